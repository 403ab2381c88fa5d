#!/usr/bin/env bash
# Creates one database per service, owned by POSTGRES_USER. Run once by the postgres image on
# an empty data volume (/docker-entrypoint-initdb.d) and by scripts/offline-postgres.sh.
set -euo pipefail

for db in user inventory store payment warehouse; do
  # "user" is a reserved word: quote every name.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
