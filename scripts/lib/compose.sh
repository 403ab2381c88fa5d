# Sourced by scripts/compose-check.sh: driving a compose project of the mesh. The caller sets
# `dc` (the compose command with its -p, --env-file and -f options, as an array) and `env_file`.

say() { printf 'compose-check: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# `docker compose` where the plugin exists, else docker-compose (1.29+).
compose_command() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi
}

# A value of the env file.
env_value() { sed -n "s/^$1=//p" "$env_file" | tail -n1; }

# Container ids of `service` (all replicas, running or not).
replicas() { "${dc[@]}" ps -q "$1"; }

# The container of replica `index` of `service`.
replica() {
  local id
  for id in $("${dc[@]}" ps -q "$1"); do
    if [[ $(docker inspect -f '{{index .Config.Labels "com.docker.compose.container-number"}}' "$id") == "$2" ]]; then
      echo "$id"
    fi
  done
}

# Waits (up to $1 s) until every container of the project is healthy (with a healthcheck),
# running (without), or a one-shot job that exited 0.
wait_healthy() {
  local limit=$1 start=$SECONDS id state bad
  while :; do
    bad=()
    for id in $("${dc[@]}" ps -q); do
      state=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}/{{.State.ExitCode}}' "$id")
      case $state in
        running/healthy/* | running/none/* | exited/none/0) ;;
        *) bad+=("$(docker inspect -f '{{.Name}}' "$id"):$state") ;;
      esac
    done
    ((${#bad[@]} == 0)) && return 0
    ((SECONDS - start < limit)) || die "not healthy after ${limit}s: ${bad[*]}"
    sleep 2
  done
}

# The Redis URL of `user` from inside the compose network (`$1`), or with the nodes' container
# addresses for this host (`$1 host`): one server `redis`, or three seeds of the cluster
# (compose.cluster.yaml: redis, redis-2 … redis-6).
redis_url() {
  local who=$1 where=${2:-network} pw nodes=() node id
  pw=$(env_value "MESH_REDIS_PASSWORD_${who^^}")
  if [[ -n $("${dc[@]}" ps -q redis-2 2>/dev/null) ]]; then
    nodes=(redis redis-2 redis-3)
  else
    nodes=(redis)
  fi
  local addrs=()
  for node in "${nodes[@]}"; do
    if [[ $where == host ]]; then
      id=$("${dc[@]}" ps -q "$node" | head -n1)
      addrs+=("$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$id" | awk '{print $1}'):6379")
    else
      addrs+=("$node:6379")
    fi
  done
  local joined
  joined=$(IFS=,; echo "${addrs[*]}")
  if ((${#nodes[@]} > 1)); then echo "redis+cluster://$who:$pw@$joined"; else echo "redis://$who:$pw@$joined"; fi
}

# meshctl as the operator, in a one-off container of the mesh image on the compose network.
meshctl() {
  "${dc[@]}" run --rm --no-deps -T --entrypoint meshctl redis-acl --redis-url "$(redis_url operator)" "$@"
}

# "<group> <consumers> <pending>" per (stream, group), from `meshctl groups`.
group_lines() {
  meshctl --json groups | python3 -c '
import json, sys
for g in json.load(sys.stdin):
    print(g["stream"], g["group"], g["consumers"], g["pending"])'
}

# Dead letters in the mesh (the dead-letter stream's length).
dead_letters() {
  meshctl --json streams | python3 -c '
import json, sys
print(sum(s["dead_letters"] for s in json.load(sys.stdin)))'
}

# Waits (up to $1 s) until every group has nothing pending and as many consumers as its
# service has replicas (`expected[<service>]`, a global associative array); prints the table.
wait_groups_settled() {
  local limit=$1 start=$SECONDS lines bad stream group consumers pending
  while :; do
    lines=$(group_lines)
    bad=()
    while read -r stream group consumers pending; do
      [[ -n $stream ]] || continue
      ((pending == 0)) || bad+=("$stream/$group: $pending pending")
      [[ $consumers == "${expected[$group]:-?}" ]] ||
        bad+=("$stream/$group: $consumers consumers, ${expected[$group]:-?} replicas")
    done <<<"$lines"
    if ((${#bad[@]} == 0)); then
      echo "$lines" | awk '{printf "    %-26s %-10s consumers %s, pending %s\n", $1, $2, $3, $4}'
      return 0
    fi
    ((SECONDS - start < limit)) || { echo "$lines" >&2; die "groups not settled after ${limit}s: ${bad[*]}"; }
    sleep 3
  done
}
