#!/usr/bin/env bash
# Scaling curve (issue 16): shipped orders/s with 1, 2 and 3 processes of one worker service
# (default the store, the busiest; `--service NAME` to choose). Each count gets a fresh private
# mesh (scripts/lib/mesh.sh, as scripts/bench-orders.sh starts it), so every run begins on empty
# databases; the extra processes are the same release binary on the service's one SQLite file (or
# its one PostgreSQL database with BENCH_POSTGRES_URL), each on its own port and with its own
# consumer name in the service's groups. Each run is bench-orders' max-throughput phase only
# (`--latency-duration 0`); then a table: replicas, shipped orders/s, CPU of the service's
# processes summed, CPU of everything measured (Redis, the services, the load generator; 100 % =
# one core). Every run's full output is kept in a temp dir (printed at the end).
#
# What this can and cannot show on this machine: it has 2 cores, and at saturation the mesh
# with one process per service already keeps most of both busy, all of it sharing them with the
# load generator. A replica therefore adds no CPU; the curve shows what running a service as
# several processes costs or saves here (one SQLite writer shared across processes through
# BEGIN IMMEDIATE and a busy timeout instead of one in-process write queue, more consumers in one
# group), not how far the service would scale on a machine with cores to spare.
#
# Replicas of the store also take `POST /orders` (bench-orders sends to each store in turn); the
# other services' HTTP APIs are not on the order path, so their replicas share only the worker's
# consumer groups.
#
# Usage: scripts/bench-scaling.sh [--service NAME] [--replicas "1 2 3"] [bench-orders flags]
# bench-orders flags default to `--duration 15`; e.g. `--duration 4` for a quick check.
# BENCH_KEEP=1 keeps each mesh's temp dir (logs); BENCH_POSTGRES_URL as for bench-orders.sh.
# Exits non-zero if any order failed, never shipped or was refused in any run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

service=store
counts=(1 2 3)
flags=()
while (($#)); do
  case $1 in
    --service) service=$2; shift 2 ;;
    --replicas) read -ra counts <<<"$2"; shift 2 ;;
    *) flags+=("$1"); shift ;;
  esac
done
case $service in
  user | inventory | store | payment | warehouse) ;;
  *) echo "bench-scaling: no service named $service" >&2; exit 2 ;;
esac
[[ " ${flags[*]} " =~ \ --duration[\ =] ]] || flags=(--duration 15 "${flags[@]}")

tag=scale
MESH_KEEP=${BENCH_KEEP:-}
MESH_PG_URL=${BENCH_POSTGRES_URL:-}
source scripts/lib/mesh.sh
out=$(mktemp -d "${TMPDIR:-/tmp}/bench-scaling-XXXXXX")
machine_line
echo "scaling $service over ${counts[*]} processes; bench-orders ${flags[*]} --latency-duration 0"

for n in "${counts[@]}"; do
  # A subshell per mesh: its EXIT trap (mesh_cleanup) stops that mesh before the next starts.
  (
    mesh_start
    extra=()
    for ((i = 2; i <= n; i++)); do
      mesh_add_replica "$service"
      if [[ $service == store ]]; then extra+=(--store-url "$replica_url"); fi
    done
    mapfile -t bench_urls < <(bench_url_flags)
    echo "== $n × $service; load $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout 600 target/release/bench-orders "${bench_urls[@]}" "${extra[@]}" "${pid_flags[@]}" \
      "${flags[@]}" --latency-duration 0
  ) 2>&1 | tee "$out/$n.txt" || true
done

# The table, from each run's output (the only phase run is the max-throughput one).
status=0
python3 - "$service" "$out" "${counts[@]}" <<'EOF' || status=$?
import re, sys
service, out, counts = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"\n| {service} processes | shipped orders/s | {service} CPU (summed) | CPU of everything | failed / never shipped / POST errors | load at start |")
print("|---|---|---|---|---|---|")
bad = False
for n in counts:
    text = open(f"{out}/{n}.txt").read()
    def find(pattern):
        m = re.search(pattern, text, re.M)
        return m.groups() if m else None
    shipped = find(r"^  shipped (\d+) orders/s")
    errors = find(r"^  placed \d+ orders .*, (\d+) POST errors$")
    ends = find(r"; (\d+) failed, (\d+) never shipped$")
    load = find(r"^== \d+ × \S+; load (\S+)")
    if not (shipped and errors and ends):
        print(f"| {n} | run failed: see {out}/{n}.txt | | | | |")
        bad = True
        continue
    # bench-orders' own sums ("store (3 processes) 120%"), or the one process's share.
    own = find(rf"^  CPU summed: .*\b{re.escape(service)} \(\d+ processes\) (\d+)%") or find(rf"^  CPU \(100% = one core\): (?:.*, )?{re.escape(service)} (\d+)%")
    everything = find(r"^  CPU summed: (?:.*, )?all processes (\d+)%")
    failures = (int(ends[0]), int(ends[1]), int(errors[0]))
    bad |= any(failures)
    pct = lambda m: f"{m[0]} %" if m else "?"
    print(f"| {n} | {shipped[0]} | {pct(own)} | {pct(everything)} | {' / '.join(map(str, failures))} | {load[0] if load else '?'} |")
sys.exit(1 if bad else 0)
EOF
echo "bench-scaling: each run's output in $out" >&2
exit "$status"
