#!/usr/bin/env bash
# End-to-end ordering benchmark (issue 5): builds in release, starts a private redis-server on a
# free port and the five services on free loopback ports (own temp data dir and SQLite files, like
# the e2e harness), then runs `bench-orders` against them: a max-throughput phase and a latency
# phase at half that rate. Prints orders/s shipped, p50/p95/p99 POST → shipped, each process's CPU
# share per phase and peak RSS. Stops everything it started when done (or on Ctrl-C).
#
# Usage: scripts/bench-orders.sh [bench-orders flags]   e.g. --shoppers 32 --duration 20 --rate 200
# (see `target/release/bench-orders --help`). BENCH_KEEP=1 keeps the temp dir (logs) afterwards.
# BENCH_POSTGRES_URL=postgres://user:pw@host:port/db runs the services on PostgreSQL instead: a
# fresh database per service (bench_<service>, dropped and re-created) on that server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'bench-orders: %s\n' "$*" >&2; }
command -v redis-server >/dev/null || { say "redis-server is required (apt-get install redis-server)"; exit 1; }

say "building (cargo build --release)"
cargo build --release -q -p user -p inventory -p store -p payment -p warehouse -p e2e --bins

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/mesh-bench-XXXXXX")
mkdir -p "$dir/logs" "$dir/redis"
pids=()
cleanup() {
  trap - EXIT INT TERM HUP
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do
      alive=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [[ -n ${BENCH_KEEP:-} ]]; then say "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

redis_port=$(free_port)
# Persistence as scripts/up.sh runs it: append-only file, fsync every second.
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no --logfile "$dir/redis/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null || { say "redis-server did not start"; exit 1; }

export REDIS_URL="redis://127.0.0.1:$redis_port"
export MESH_STREAM_PREFIX="bench:"
export MESH_ADMIN_EMAIL="admin@bench.test"
export MESH_ADMIN_PASSWORD="bench-admin-password-123"
# Every shopper registers from this one address: lift the per-address registration limit.
export MESH_REGISTER_MAX_PER_IP=1000000
pid_flags=(--pid "redis=$redis_pid")
url_flags=()
for name in user inventory store payment warehouse; do
  port=$(free_port)
  database_url="sqlite://$dir/$name.db?mode=rwc"
  if [[ -n ${BENCH_POSTGRES_URL:-} ]]; then
    psql -X -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS bench_$name WITH (FORCE)" -c "CREATE DATABASE bench_$name"
    database_url="${BENCH_POSTGRES_URL%/*}/bench_$name"
  fi
  # user first, and each one ready before the next: user writes the dev key pair the others use.
  REDIS_URL=$REDIS_URL \
    DATABASE_URL="$database_url" \
    MESH_DATA_DIR="$dir" \
    MESH_LISTEN="127.0.0.1:$port" \
    MESH_LOG_FORMAT=json \
    RUST_LOG=warn \
    MESH_STARTING_CREDIT_CENTS=1000000000 \
    "target/release/$name" >"$dir/logs/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  pid_flags+=(--pid "$name=$pid")
  url_flags+=("--$name-url" "http://127.0.0.1:$port")
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { say "$name exited:"; tail -n 20 "$dir/logs/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { say "$name not ready"; exit 1; }
done

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis:   $(redis-server --version | awk '{print $3}'); database: ${BENCH_POSTGRES_URL:+PostgreSQL }${BENCH_POSTGRES_URL:-SQLite files (WAL)}; date: $(date -u +%Y-%m-%dT%H:%MZ)"
# The warehouse URL is not needed by the benchmark itself.
bench_urls=()
for ((i = 0; i < ${#url_flags[@]}; i += 2)); do
  [[ ${url_flags[i]} == --warehouse-url ]] || bench_urls+=("${url_flags[i]}" "${url_flags[i + 1]}")
done
timeout 600 target/release/bench-orders "${bench_urls[@]}" "${pid_flags[@]}" "$@"
