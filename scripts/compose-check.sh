#!/usr/bin/env bash
# The compose check (issue 13): the mesh as users run it (compose.yaml, PostgreSQL), built from
# ./Dockerfile, under order load over HTTP while its workers are scaled, killed and scaled back,
# then checked with the saga tests' invariants (e2e/tests/saga/chaos_check.rs):
#
#   1. build the images (`compose build`) and `compose up`, wait until every container is healthy;
#   2. start `bench-orders` on this host (shoppers register, products are created, orders are
#      placed with POST /orders at COMPOSE_CHECK_RATE for COMPOSE_CHECK_SECONDS, through replica
#      1's published ports; it follows order-shipped in Redis as the operator);
#   3. under that load, scale inventory, store, payment and warehouse to 3 replicas (user to 2),
#      wait until each group has as many consumers as its service has replicas;
#   4. `docker kill` replica 2 of each worker service; restart policy (or the check) starts it
#      again under the same consumer name, which takes back what it held;
#   5. scale back to 1 (compose stops replicas 2 and 3 with SIGTERM: they must exit 0 and leave
#      their groups, handing nothing back unfinished);
#   6. when the load is over: every order shipped (bench-orders: 0 failed, 0 never shipped, 0 POST
#      errors); nothing pending, every group's consumers = its service's replicas, no dead letter
#      (meshctl in a container); the records' invariants (scripts/lib/compose-invariants.py:
#      every order terminal or shipped, money and stock conserved);
#   7. `compose stop` the services: every container exits 0, and every group is left with no
#      consumer and nothing pending.
#
# Usage: scripts/compose-check.sh
# Environment: COMPOSE_CHECK_FILES (default "compose.yaml"; "compose.yaml compose.cluster.yaml"
#   runs it on a Redis Cluster), COMPOSE_CHECK_RATE (orders/s, default 15),
#   COMPOSE_CHECK_SECONDS (the load, default 150), COMPOSE_CHECK_STANDINS=1 (use the local
#   stand-in images of scripts/docker-standin-images.sh: `source scripts/standin-env.sh`),
#   COMPOSE_CHECK_PROJECT (default meshcheck), COMPOSE_CHECK_KEEP=1 (leave the project up),
#   COMPOSE_CHECK_BUILD=0 (no `compose build`: run the images built before).
# Its own secrets (a private env file); a user's .env is not read. Needs docker, compose,
# python3 and cargo (it builds bench-orders).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/compose.sh

files=${COMPOSE_CHECK_FILES:-compose.yaml}
rate=${COMPOSE_CHECK_RATE:-15}
secs=${COMPOSE_CHECK_SECONDS:-150}
project=${COMPOSE_CHECK_PROJECT:-meshcheck}
credit=1000000000
workers=(inventory store payment warehouse)
[[ ${COMPOSE_CHECK_STANDINS:-} == 1 ]] && source scripts/standin-env.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/compose-check.XXXXXX")
env_file=$work/env
ENV_FILE=$env_file scripts/init-env.sh >/dev/null
printf 'MESH_ADMIN_EMAIL=admin@compose-check.test\nMESH_ADMIN_PASSWORD=%s\n' \
  "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >>"$env_file"
read -ra compose_cmd <<<"$(compose_command)"
dc=("${compose_cmd[@]}" -p "$project" --env-file "$env_file")
for f in $files; do dc+=(-f "$f"); done
dc+=(-f scripts/lib/compose-check.yaml)

bench=
cleanup() {
  [[ -n $bench ]] && kill "$bench" 2>/dev/null
  if [[ -z ${COMPOSE_CHECK_KEEP:-} ]]; then
    "${dc[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work"
  else
    say "kept: ${dc[*]}"
  fi
}
trap cleanup EXIT
phase() { phase_name=$1; phase_start=$SECONDS; say "== $1"; }
done_phase() { say "   $phase_name: $((SECONDS - phase_start)) s"; timings+=("$phase_name $((SECONDS - phase_start)) s"); }
timings=()

echo "compose check: $(date -u +%Y-%m-%dT%H:%MZ); files: $files; $(nproc) cores; $(docker version -f 'docker {{.Server.Version}}'); ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2>/dev/null || true)"
echo "images: rust ${MESH_RUST_IMAGE:-rust:1-bookworm}, runtime ${MESH_RUNTIME_IMAGE:-debian:bookworm-slim}, redis ${MESH_REDIS_IMAGE:-redis:7}, postgres ${MESH_POSTGRES_IMAGE:-postgres:16}"

phase build
say "bench-orders (cargo build)"
nice -n 19 cargo build -q -p e2e --bin bench-orders
if [[ ${COMPOSE_CHECK_BUILD:-1} == 0 ]]; then
  echo "build skipped (COMPOSE_CHECK_BUILD=0): the images built before"
else
  "${dc[@]}" build
fi
image=${MESH_IMAGE:-mesh:latest}
echo "image $image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'), user $(docker image inspect -f '{{.Config.User}}' "$image")"
done_phase

phase up
"${dc[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
"${dc[@]}" up -d
wait_healthy 300
done_phase

declare -A expected=([user]=1 [inventory]=1 [store]=1 [payment]=1 [warehouse]=1)
wait_groups_settled_or_busy() {
  # Under load something is always pending: only the consumer counts must match.
  local start=$SECONDS lines bad
  while :; do
    lines=$(group_lines)
    bad=$(awk -v replicas="$(for s in "${!expected[@]}"; do printf '%s=%s,' "$s" "${expected[$s]}"; done)" '
      BEGIN { n = split(replicas, kv, ","); for (i = 1; i <= n; i++) { split(kv[i], p, "="); want[p[1]] = p[2] } }
      $3 != want[$2] { printf "%s/%s:%s ", $1, $2, $3 }' <<<"$lines")
    [[ -z $bad ]] && { echo "$lines" | awk '{printf "    %-26s %-10s consumers %s\n", $1, $2, $3}'; return 0; }
    ((SECONDS - start < $1)) || die "consumers do not match replicas: $bad"
    sleep 3
  done
}
echo "up: every group has its consumer"
wait_groups_settled_or_busy 120
url() { echo "http://$("${dc[@]}" port --index 1 "$1" "$2")"; }
phase load
REDIS_URL=$(redis_url operator host) \
MESH_ADMIN_EMAIL=$(env_value MESH_ADMIN_EMAIL) MESH_ADMIN_PASSWORD=$(env_value MESH_ADMIN_PASSWORD) \
  target/debug/bench-orders --user-url "$(url user 8001)" --inventory-url "$(url inventory 8002)" \
  --store-url "$(url store 8003)" --payment-url "$(url payment 8004)" \
  --shoppers 8 --products 8 --duration 0 --rate "$rate" --latency-duration "$secs" \
  --drain-timeout 180 >"$work/bench.txt" 2>&1 &
bench=$!
load_start=$SECONDS
sleep 20

say "scale up: ${workers[*]} to 3, user to 2"
scale=(--scale user=2)
for w in "${workers[@]}"; do scale+=(--scale "$w=3"); expected[$w]=3; done
expected[user]=2
"${dc[@]}" up -d --no-recreate "${scale[@]}"
wait_healthy 180
echo "scaled up under load (t+$((SECONDS - load_start)) s): consumers per group"
wait_groups_settled_or_busy 120

sleep 10
killed=()
for w in "${workers[@]}"; do killed+=("$(replica "$w" 2)"); done
say "docker kill replica 2 of ${workers[*]}"
docker kill "${killed[@]}" >/dev/null
sleep 8
restarted=policy
for id in "${killed[@]}"; do
  if [[ $(docker inspect -f '{{.State.Running}}' "$id") != true ]]; then
    docker start "$id" >/dev/null
    restarted=check
  fi
done
echo "killed replica 2 of ${workers[*]} (t+$((SECONDS - load_start)) s); started again by the $( [[ $restarted == policy ]] && echo "restart policy" || echo "check (docker start)")"
wait_healthy 180
wait_groups_settled_or_busy 120

sleep 15
say "scale down to 1"
leaving=()
for w in "${workers[@]}" user; do
  for i in 2 3; do leaving+=($(replica "$w" "$i")); done
done
# Each stopping replica's exit status, collected while compose stops and removes it.
for id in "${leaving[@]}"; do (docker wait "$id" >"$work/exit.$id" 2>&1 &); done
for w in "${workers[@]}" user; do expected[$w]=1; done
"${dc[@]}" up -d --no-recreate --scale user=1 $(for w in "${workers[@]}"; do printf -- '--scale %s=1 ' "$w"; done)
sleep 2
codes=$(for id in "${leaving[@]}"; do cat "$work/exit.$id" 2>/dev/null || echo "?"; done | sort | uniq -c | xargs)
echo "scaled down under load (t+$((SECONDS - load_start)) s): ${#leaving[@]} replicas stopped, exit statuses: $codes"
[[ $codes == "${#leaving[@]} 0" ]] || die "a replica did not exit 0 when scaled down: $codes"
wait_groups_settled_or_busy 60

say "waiting for the load to finish"
status=0
wait "$bench" || status=$?
bench=
done_phase
grep -v '^sample ' "$work/bench.txt" | sed 's/^/    /'
((status == 0)) || die "bench-orders failed ($status)"
grep -q ' 0 failed, 0 never shipped, 0 POST errors' "$work/bench.txt" || die "orders failed or never shipped"

phase invariants
echo "after the load: every group (consumers = replicas, nothing pending)"
wait_groups_settled 90
dead=$(dead_letters)
echo "dead letters: $dead"
((dead == 0)) || die "$dead dead letters"
echo "records: $(python3 scripts/lib/compose-invariants.py "$credit" -- "${dc[@]}")" ||
  die "invariants violated"
done_phase

phase stop
"${dc[@]}" stop user "${workers[@]}" >/dev/null 2>&1
stops=$(for s in user "${workers[@]}"; do replicas "$s"; done | xargs docker inspect -f '{{.State.ExitCode}}' | sort | uniq -c | xargs)
echo "compose stop: exit statuses $stops"
[[ $stops == "5 0" ]] || die "a service did not exit 0 on stop: $stops"
for s in "${!expected[@]}"; do expected[$s]=0; done
echo "after the stop: every group left (no consumer), nothing pending"
wait_groups_settled 30
done_phase

echo "timings: ${timings[*]}"
echo "compose check: PASSED"
