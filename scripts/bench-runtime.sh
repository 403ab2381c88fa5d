#!/usr/bin/env bash
# Benchmark of the stream runtime (the `mesh-bench` crate; see docs/benchmarks.md): one consumer
# process, no-op handler, idempotency on, against a private redis-server on a pre-filled stream,
# measured in rounds back to back with raw pipelined loops doing the same Redis work (the ratio is
# the median round's), then a SQL-effect (SQLite) run.
# Usage: scripts/bench-runtime.sh [ENTRIES] [extra mesh-bench run flags]
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES="${1:-200000}"
shift || true
command -v redis-server >/dev/null || { echo "redis-server is required (apt-get install redis-server)" >&2; exit 1; }
cargo build --release -q -p mesh-bench
PORT="${BENCH_REDIS_PORT:-6399}"
DIR="$(mktemp -d)"
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --save "" --appendonly no --daemonize no \
  --logfile "$DIR/redis.log" &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null; wait $REDIS_PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "redis:   $(redis-server --version | awk '{print $3}')"
./target/release/mesh-bench --redis-url "redis://127.0.0.1:$PORT" run --entries "$ENTRIES" --data-dir "$DIR" "$@"
