#!/usr/bin/env bash
# The entrypoint of the PostgreSQL stand-in image (scripts/docker-standin-images.sh), doing in
# short what the postgres image's entrypoint does. On an empty PGDATA: initdb with POSTGRES_USER
# / POSTGRES_PASSWORD, create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh against a server
# on its socket only. Then run postgres on every interface with password auth. Starts as root,
# runs as postgres.
set -euo pipefail

export PGDATA=${PGDATA:-/var/lib/postgresql/data}
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n1)

if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec runuser -u postgres -- bash "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8
  rm -f "$pwfile"
  # Other containers connect from the compose network, not from localhost.
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"

  "$bin/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses='' -k /run/postgresql" start
  export PGHOST=/run/postgresql
  if [[ $POSTGRES_DB != postgres ]]; then
    "$bin/psql" -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for script in /docker-entrypoint-initdb.d/*.sh; do
    if [[ -e $script ]]; then bash "$script"; fi
  done
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop
fi

exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -k /run/postgresql
