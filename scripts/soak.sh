#!/usr/bin/env bash
# Soak (issue 17): the five services (release build) on SQLite — or PostgreSQL with
# SOAK_POSTGRES_URL — and one Redis, under a steady order load for DURATION, sampled every
# SOAK_SAMPLE_EVERY seconds: each service's RSS, database and WAL size, inbox and outbox rows,
# Redis used_memory, stream entries, idempotency-set members, p99 POST → shipped. At the end:
# the table, a flatness check of everything the mesh must keep bounded (after warm-up and one
# retention window, set short here), every order shipped, nothing pending, no dead letter; and
# a PNG plot when matplotlib is installed.
#
# Usage: scripts/soak.sh DURATION [--ci]     DURATION like 90s, 10m, 1h
#   --ci: the short variant CI runs (4 minutes is enough): retention windows of seconds.
# Settings (environment): SOAK_RATE orders/s (default 150, about half this 2-core machine's
#   maximum), SOAK_SAMPLE_EVERY (10 s), SOAK_STREAM_RETENTION (1m), SOAK_IDEMPOTENCY_RETENTION
#   (2m), SOAK_HOUSEKEEPING (15s), SOAK_ACCESS_TOKEN_TTL (seconds; default the services' 15 min:
#   the shoppers log in again whenever theirs expires), SOAK_OUT (directory for soak.csv, soak.png and soak.txt;
#   default: a temp dir that is kept), SOAK_POSTGRES_URL (a server where it may create databases).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=${1:?usage: scripts/soak.sh DURATION [--ci]}
secs=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)([smh]?)', sys.argv[1]) or sys.exit('DURATION like 90s, 10m, 1h'); print(int(m[1])*{'':1,'s':1,'m':60,'h':3600}[m[2]])" "$duration")
if [[ ${2:-} == --ci ]]; then
  : "${SOAK_RATE:=60}" "${SOAK_SAMPLE_EVERY:=5}" "${SOAK_STREAM_RETENTION:=15s}"
  : "${SOAK_IDEMPOTENCY_RETENTION:=30s}" "${SOAK_HOUSEKEEPING:=5s}"
  # Tokens that expire within the run (plus the verifier's 5 s of leeway): the shoppers must
  # log in again mid-soak, as they do every 15 minutes of a long one.
  : "${SOAK_ACCESS_TOKEN_TTL:=45}"
fi
if [[ -n ${SOAK_ACCESS_TOKEN_TTL:-} ]]; then export MESH_ACCESS_TOKEN_TTL_SECS=$SOAK_ACCESS_TOKEN_TTL; fi
rate=${SOAK_RATE:-150}
every=${SOAK_SAMPLE_EVERY:-10}
export MESH_STREAM_RETENTION=${SOAK_STREAM_RETENTION:-1m}
export MESH_IDEMPOTENCY_RETENTION=${SOAK_IDEMPOTENCY_RETENTION:-2m}
export MESH_HOUSEKEEPING_INTERVAL=${SOAK_HOUSEKEEPING:-15s}
# Settled once: 30 s of warm-up, plus the longest an idempotency member lives (two windows and
# a minute of margin, runtime/idempotency.rs), plus one housekeeping round.
settle=$(python3 -c "
import sys
def s(v): return int(v[:-1]) * {'s': 1, 'm': 60, 'h': 3600}[v[-1]]
print(30 + 2 * s(sys.argv[1]) + 60 + s(sys.argv[2]))" "$MESH_IDEMPOTENCY_RETENTION" "$MESH_HOUSEKEEPING_INTERVAL")
((settle + 4 * every < secs)) || { echo "soak: $duration is too short to settle (needs more than $((settle + 4 * every)) s)" >&2; exit 2; }

tag=soak
MESH_PG_URL=${SOAK_POSTGRES_URL:-}
source scripts/lib/mesh.sh
out=${SOAK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/soak-out-XXXXXX")}
mkdir -p "$out"
mesh_start
{
  machine_line
  echo "soak: $duration at $rate orders/s; stream retention $MESH_STREAM_RETENTION, idempotency retention $MESH_IDEMPOTENCY_RETENTION, housekeeping every $MESH_HOUSEKEEPING_INTERVAL; samples every $every s; settled after $settle s"
} | tee "$out/soak.txt"

mapfile -t bench_urls < <(bench_url_flags)
target/release/bench-orders "${bench_urls[@]}" --shoppers 8 --products 8 --duration 0 \
  --rate "$rate" --latency-duration "$secs" --sample-every "$every" --drain-timeout 120 \
  >"$out/bench.txt" 2>&1 &
bench=$!
pids+=("$bench")
specs=()
for name in user inventory store payment warehouse; do
  pid=$(printf '%s\n' "${pid_flags[@]}" | sed -n "s/^$name=//p")
  db=${db_files[$name]}
  [[ -n $db ]] || db="${MESH_PG_URL%/*}/${tag}_$name"
  specs+=("$name=$pid:$db")
done
python3 scripts/soak/sample.py "$out/soak.csv" "$every" "$redis_port" "$MESH_STREAM_PREFIX" "$out/bench.txt" "${specs[@]}" &
sampler=$!
pids+=("$sampler")

status=0
wait "$bench" || status=$?
kill "$sampler" 2>/dev/null || true
grep -v '^sample ' "$out/bench.txt" | tee -a "$out/soak.txt"
((status == 0)) || { echo "soak: bench-orders failed ($status)" | tee -a "$out/soak.txt"; exit 1; }

# Nothing lost, nothing stuck: every order shipped, no failed order, nothing pending, no dead letter.
verdict=0
grep -q ' 0 failed, 0 never shipped, 0 POST errors' "$out/bench.txt" || { echo "soak: orders failed or never shipped" | tee -a "$out/soak.txt"; verdict=1; }
count_pending() {
  local total=0 stream group n
  for stream in $(redis-cli -p "$redis_port" --scan --pattern "${MESH_STREAM_PREFIX}*"); do
    [[ $(redis-cli -p "$redis_port" TYPE "$stream") == stream ]] || continue
    for group in $(redis-cli -p "$redis_port" XINFO GROUPS "$stream" | awk 'prev=="name"{print} {prev=$0}'); do
      n=$(redis-cli -p "$redis_port" XPENDING "$stream" "$group" | head -1)
      total=$((total + n))
    done
  done
  echo "$total"
}
# The last follow-ups (order-shipped to the store, …) may still be in flight for a moment.
for _ in $(seq 30); do
  pending=$(count_pending)
  ((pending == 0)) && break
  sleep 1
done
# Every origin stream has its own dead-letter stream (`<prefix>dead-letter:{<prefix><stream>}`).
dead=0
for key in $(redis-cli -p "$redis_port" --scan --pattern "${MESH_STREAM_PREFIX}dead-letter:*"); do
  dead=$((dead + $(redis-cli -p "$redis_port" XLEN "$key")))
done
echo "at the end: $pending entries pending, $dead dead letters" | tee -a "$out/soak.txt"
((pending == 0 && dead == 0)) || verdict=1

python3 scripts/soak/report.py "$out/soak.csv" "$settle" --png "$out/soak.png" \
  --title "soak: $duration at $rate orders/s ($(date -u +%F), ${MESH_PG_URL:+PostgreSQL}${MESH_PG_URL:-SQLite})" \
  | tee -a "$out/soak.txt" || verdict=1
echo "soak: output in $out" >&2
exit "$verdict"
