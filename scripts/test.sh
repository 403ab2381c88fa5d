#!/usr/bin/env bash
# The test command. Every test starts its own redis-server (on a free port, in a temp dir), so
# redis-server must be installed; nothing needs to be running.
#
# Runs the whole workspace on SQLite; when TEST_DATABASE_URL names a PostgreSQL server
# (postgres://user:password@host:port/db, a role that may CREATE DATABASE), runs it once more
# with every test database created on that server.
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -p store` or `scripts/test.sh -- --nocapture`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

redis_bin=${REDIS_SERVER_BIN:-redis-server}
if ! command -v "$redis_bin" >/dev/null 2>&1; then
  cat >&2 <<MSG
error: '$redis_bin' not found. The tests start real redis-server processes. Install it:
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
or set REDIS_SERVER_BIN to the path of a redis-server binary.
MSG
  exit 1
fi

echo "== tests on SQLite" >&2
env -u TEST_DATABASE_URL cargo test --workspace --all-features "$@"

if [[ -n ${TEST_DATABASE_URL:-} ]]; then
  echo "== tests on PostgreSQL (TEST_DATABASE_URL)" >&2
  cargo test --workspace --all-features "$@"
fi
