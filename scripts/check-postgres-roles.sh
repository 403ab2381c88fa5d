#!/usr/bin/env bash
# Checks scripts/postgres-init.sh (what compose runs on PostgreSQL's first start) against a real
# server: each service gets its own role that can build its schema in its own database and
# cannot connect to another's, nor create databases or roles. Uses databases and roles named
# chk<random>_…, dropped at the end.
#
# Usage: scripts/check-postgres-roles.sh postgres://superuser:pw@host:port/db   (CI passes
# TEST_DATABASE_URL)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
url=${1:?usage: scripts/check-postgres-roles.sh SUPERUSER_URL}
base=${url%/*}
prefix="chk$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')_"
services=(user inventory store payment warehouse)
for s in "${services[@]}"; do export "MESH_PG_PASSWORD_${s^^}=pw-$s-$prefix"; done

cleanup() {
  for s in "${services[@]}"; do
    psql -XAtq "$url" -c "DROP DATABASE IF EXISTS \"$prefix$s\" WITH (FORCE)" \
      -c "DROP ROLE IF EXISTS \"${prefix}mesh_$s\"" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

POSTGRES_USER=$(python3 -c 'import sys, urllib.parse as u; print(u.unquote(u.urlsplit(sys.argv[1]).username or ""))' "$url") \
  POSTGRES_DB=$url MESH_PG_NAME_PREFIX=$prefix bash scripts/postgres-init.sh

as() { # as SERVICE DATABASE SQL: runs SQL as that service's role
  local role="${prefix}mesh_$1" pw="pw-$1-$prefix" host
  host=$(python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(f"{p.hostname}:{p.port or 5432}")' "$url")
  psql -XAtq "postgresql://$role:$pw@$host/$2" -v ON_ERROR_STOP=1 -c "$3" 2>&1
}
fail() { echo "check-postgres-roles: FAIL: $*" >&2; exit 1; }

for s in "${services[@]}"; do
  out=$(as "$s" "$prefix$s" "CREATE TABLE t (x int); INSERT INTO t VALUES (1); SELECT count(*) FROM t") \
    || fail "$s cannot build its schema: $out"
  [[ $out == 1 ]] || fail "$s: unexpected $out"
done
out=$(as store "${prefix}payment" "SELECT 1") && fail "store connected to payment's database"
grep -q "permission denied" <<<"$out" || fail "store into payment: $out"
out=$(as store "${prefix}store" "CREATE DATABASE ${prefix}x") && fail "store created a database"
out=$(as store "${prefix}store" "CREATE ROLE ${prefix}x") && fail "store created a role"
super=$(as store "${prefix}store" "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
[[ $super == f ]] || fail "store's role is a superuser"
echo "check-postgres-roles: ok (one role per service database, confined to it)"
