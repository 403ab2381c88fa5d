#!/usr/bin/env bash
# Runs the whole mesh on this machine: builds the workspace (release), makes sure a redis-server
# answers on 127.0.0.1:6379 (starting one with its data in ./data/redis if none does), starts the
# five services on 127.0.0.1:8001-8005 with their SQLite databases and logs under ./data, and
# stops everything cleanly on Ctrl-C.
#
# Environment: MESH_DATA_DIR (default ./data); REDIS_URL to use another Redis (then none is
# started here). Other MESH_* settings are passed through to the services (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

services=(user:8001 inventory:8002 store:8003 payment:8004 warehouse:8005)
data=${MESH_DATA_DIR:-$PWD/data}
mkdir -p "$data/logs"
data=$(cd "$data" && pwd)

say() { printf 'up: %s\n' "$*" >&2; }

# Probes must not hang on a server that accepts but never answers.
if command -v timeout >/dev/null; then probe() { timeout 2 "$@"; }; else probe() { "$@"; }; fi

# `redis_ping PORT`: true if a Redis answers PING on 127.0.0.1:PORT.
redis_ping() {
  probe bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && head -c5 <&3 | grep -q PONG' _ "$1" 2>/dev/null
}

# `http_ok PORT PATH`: true if GET PATH on 127.0.0.1:PORT answers 200.
http_ok() {
  probe bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$2" >&3 && head -n1 <&3 | grep -q " 200 "' _ "$1" "$2" 2>/dev/null
}

# `show_log NAME`: why a service stopped: its error (without the backtrace), else its last lines.
show_log() {
  local log="$data/logs/$1.log"
  say "the end of $log:"
  if grep -q '^Error:' "$log" 2>/dev/null; then
    sed -n '/^Error:/,/^Stack backtrace:/{/^Stack backtrace:/d;p}' "$log" >&2
  else
    tail -n 20 "$log" >&2 || true
  fi
}

# Starts a command in the background in its own session, so Ctrl-C reaches only this script,
# which then stops the services before Redis.
spawn() {
  if command -v setsid >/dev/null; then setsid "$@" & else "$@" & fi
}

# --- redis-server ---------------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
  say "cargo not found: install the Rust toolchain (https://rustup.rs), then run scripts/up.sh again"
  exit 1
fi
# A Redis already answering on 6379 will do, even without a redis-server program here.
if [[ -z ${REDIS_URL:-} ]] && ! command -v redis-server >/dev/null && ! redis_ping 6379; then
  as_root=()
  [[ $(id -u) == 0 ]] || as_root=(sudo -n)
  if command -v apt-get >/dev/null && { [[ $(id -u) == 0 ]] || sudo -n true 2>/dev/null; }; then
    say "redis-server not found: installing it with ${as_root[*]:+${as_root[*]} }apt-get"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
  elif command -v brew >/dev/null; then
    say "redis-server not found: installing it with brew"
    brew install redis
  else
    cat >&2 <<'MSG'
up: redis-server not found. Install it, then run scripts/up.sh again:
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
(or set REDIS_URL to a Redis server you already run)
MSG
    exit 1
  fi
fi

# --- build ----------------------------------------------------------------------------------
say "building (cargo build --release --workspace)"
cargo build --release --workspace

# --- start, and stop on exit ------------------------------------------------------------------
service_pids=()
redis_pid=

# `stop PID...`: SIGTERM, then up to 30 s for the processes to finish their work, then SIGKILL.
stop() {
  (($# > 0)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 300); do
    local alive=0 pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
}

cleanup() {
  trap - EXIT INT TERM HUP
  say "stopping the services"
  stop "${service_pids[@]}"
  if [[ -n $redis_pid ]]; then
    say "stopping redis-server"
    stop "$redis_pid"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

if [[ -n ${REDIS_URL:-} ]]; then
  say "using REDIS_URL=$REDIS_URL"
elif redis_ping 6379; then
  say "using the redis-server already answering on 127.0.0.1:6379"
  export REDIS_URL=redis://127.0.0.1:6379
else
  mkdir -p "$data/redis"
  say "starting redis-server on 127.0.0.1:6379 (data in $data/redis)"
  spawn redis-server --port 6379 --bind 127.0.0.1 --dir "$data/redis" \
    --appendonly yes --logfile "$data/redis/redis.log"
  redis_pid=$!
  for _ in $(seq 100); do
    redis_ping 6379 && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! redis_ping 6379; then
    say "redis-server did not start; its log ($data/redis/redis.log):"
    tail -n 20 "$data/redis/redis.log" >&2 || true
    exit 1
  fi
  export REDIS_URL=redis://127.0.0.1:6379
fi

# --- the first admin: from the environment, else generated once and kept in the data dir -----
admin_email=${MESH_ADMIN_EMAIL:-admin@mesh.local}
if [[ -n ${MESH_ADMIN_PASSWORD:-} ]]; then
  admin_password=$MESH_ADMIN_PASSWORD
else
  if [[ ! -s $data/admin-password ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$data/admin-password")
  fi
  admin_password=$(cat "$data/admin-password")
fi
export MESH_ADMIN_EMAIL=$admin_email MESH_ADMIN_PASSWORD=$admin_password

for entry in "${services[@]}"; do
  name=${entry%%:*} port=${entry##*:}
  # Each service gets its own SQLite file in the data dir: a DATABASE_URL from the caller's
  # environment would point all five at one database.
  : >"$data/logs/$name.log"
  spawn env -u DATABASE_URL MESH_CONSUMER_NAME="{host}" MESH_LISTEN="127.0.0.1:$port" MESH_DATA_DIR="$data" \
    "target/release/$name" serve >>"$data/logs/$name.log" 2>&1
  service_pids+=("$!")
done

for i in "${!services[@]}"; do
  name=${services[$i]%%:*} port=${services[$i]##*:} pid=${service_pids[$i]}
  for _ in $(seq 300); do
    http_ok "$port" /readyz && continue 2
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  say "$name did not become ready"
  show_log "$name"
  exit 1
done

# --- demo products (once: only when the catalog is empty) ------------------------------------
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
if command -v curl >/dev/null; then
  admin_token=$(curl -fsS -X POST http://127.0.0.1:8001/auth/login -H 'content-type: application/json' \
    -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" | json_field access_token || true)
  if [[ -n $admin_token ]] && curl -fsS 'http://127.0.0.1:8002/products?per_page=1' | grep -q '"total":0'; then
    say "adding demo products"
    for product in 'Espresso cup:1200:50' 'Pour-over kettle:4500:10' 'Coffee grinder:8900:3'; do
      IFS=: read -r pname price stock <<<"$product"
      curl -fsS -o /dev/null -X POST http://127.0.0.1:8002/products -H "authorization: Bearer $admin_token" \
        -H 'content-type: application/json' \
        -d "{\"name\":\"$pname\",\"price_cents\":$price,\"stock\":$stock}" || say "could not add $pname"
    done
  fi
else
  say "curl not found: no demo products added"
fi

echo
echo "The mesh is up. Ctrl-C stops it."
for entry in "${services[@]}"; do
  name=${entry%%:*} port=${entry##*:}
  printf '  %-10s http://127.0.0.1:%s   log: %s\n' "$name" "$port" "$data/logs/$name.log"
done
printf '  %-10s %s\n' redis "$REDIS_URL"
printf '  %-10s %s / %s\n' admin "$admin_email" "$admin_password"
cat <<'WALK'

Try it (copy-paste; needs curl and jq):
  curl -s localhost:8002/products | jq '.items[] | {id, name, price_cents, stock}'
  curl -s -X POST localhost:8001/auth/register -H 'content-type: application/json' \
       -d '{"email":"me@example.com","password":"correct-horse-battery"}'
  TOKEN=$(curl -s -X POST localhost:8001/auth/login -H 'content-type: application/json' \
       -d '{"email":"me@example.com","password":"correct-horse-battery"}' | jq -r .access_token)
  curl -s localhost:8004/wallet -H "authorization: Bearer $TOKEN" | jq
  PRODUCT=$(curl -s localhost:8002/products | jq -r '.items[0].id')
  ORDER=$(curl -s -X POST localhost:8003/orders -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -H 'Idempotency-Key: first-order' \
       -d "{\"items\":[{\"product_id\":\"$PRODUCT\",\"quantity\":1}]}" | jq -r .id)
  curl -s localhost:8003/orders/$ORDER -H "authorization: Bearer $TOKEN" | jq '{status, total_cents, history}'
  cargo run -q -p meshctl -- groups                   # the operator's view of the streams
Swagger UI: http://127.0.0.1:800N/docs on every service.
WALK
echo

# Stay in the foreground; if a service stops on its own, stop the rest and say which.
while :; do
  for i in "${!services[@]}"; do
    if ! kill -0 "${service_pids[$i]}" 2>/dev/null; then
      name=${services[$i]%%:*}
      say "$name stopped unexpectedly"
      show_log "$name"
      exit 1
    fi
  done
  sleep 1
done
