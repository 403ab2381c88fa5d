#!/usr/bin/env bash
# Creates one role and one database per service: role mesh_<service> (password from
# MESH_PG_PASSWORD_<SERVICE>) owns database <service>, and nobody else may connect to it. The
# services never use the superuser. Run once on an empty data volume by the postgres image
# (/docker-entrypoint-initdb.d) or its stand-in (scripts/standin/postgres-entrypoint.sh).
# MESH_PG_NAME_PREFIX (default empty) goes before every database and role name
# (scripts/check-postgres-roles.sh uses it).
set -euo pipefail
prefix=${MESH_PG_NAME_PREFIX:-}

for db in user inventory store payment warehouse; do
  var="MESH_PG_PASSWORD_${db^^}"
  password=${!var:?set $var (scripts/init-env.sh writes it)}
  # psql variables quote the password (:'pw') and names (:"name"); "user" is a reserved word.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -v role="${prefix}mesh_$db" -v db="$prefix$db" -v pw="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
done
