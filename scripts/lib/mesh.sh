# Sourced by scripts/bench-orders.sh and scripts/soak.sh: a private mesh on this machine — a
# redis-server on a free port (append-only file, fsync every second, as scripts/up.sh runs it)
# and the five release binaries on free loopback ports, each with its own SQLite file in a temp
# dir (or, with $MESH_PG_URL, a fresh PostgreSQL database per service on that server:
# <prefix>_<service>, dropped and re-created). Everything started is stopped on exit.
#
# The caller sets `tag` (names the temp dir and databases) and may export MESH_* settings the
# services should see. `mesh_start` then defines: dir, redis_port, REDIS_URL, pids (every
# process), pid_flags (`--pid name=PID` for bench-orders), url_flags (`--<service>-url URL`),
# db_files (service → SQLite path). MESH_KEEP=1 keeps the temp dir (logs) afterwards.
# MESH_PROFILE=dist runs the services built as the image builds them (Cargo.toml, [profile.dist]:
# whole-program optimisation, minutes per binary to build; for the footprint figures); default
# release. The load generators are always release builds.
# `mesh_add_replica NAME` then starts one more process of that service on the same database
# (scripts/bench-scaling.sh): it is `NAME-2`, `NAME-3`, … in pid_flags and logs/.

say() { printf '%s: %s\n' "$tag" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
mesh_profile=${MESH_PROFILE:-release}
mesh_cleanup() {
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
  if [[ -n ${MESH_KEEP:-} ]]; then say "kept $dir"; else rm -rf "$dir"; fi
}

mesh_start() {
  command -v redis-server >/dev/null || { say "redis-server is required (apt-get install redis-server)"; exit 1; }
  say "building (cargo build --profile $mesh_profile)"
  cargo build --profile "$mesh_profile" -q -p user -p inventory -p store -p payment -p warehouse --bins
  cargo build --release -q -p e2e --bins

  dir=$(mktemp -d "${TMPDIR:-/tmp}/mesh-$tag-XXXXXX")
  mkdir -p "$dir/logs" "$dir/redis"
  trap mesh_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP

  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
    --appendfsync everysec --save "" --daemonize no --logfile "$dir/redis/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$redis_port" ping >/dev/null || { say "redis-server did not start"; exit 1; }

  export REDIS_URL="redis://127.0.0.1:$redis_port"
  export MESH_STREAM_PREFIX="$tag:"
  export MESH_ADMIN_EMAIL="admin@$tag.test"
  export MESH_ADMIN_PASSWORD="$tag-admin-password-123"
  # Every shopper registers from this one address: lift the per-address registration limit.
  export MESH_REGISTER_MAX_PER_IP=1000000
  pid_flags=(--pid "redis=$redis_pid")
  url_flags=()
  declare -gA db_files=() db_urls=() replicas=()
  for name in user inventory store payment warehouse; do
    local database_url
    database_url="sqlite://$dir/$name.db?mode=rwc"
    db_files[$name]="$dir/$name.db"
    if [[ -n ${MESH_PG_URL:-} ]]; then
      psql -X -q "$MESH_PG_URL" -c "DROP DATABASE IF EXISTS ${tag}_$name WITH (FORCE)" -c "CREATE DATABASE ${tag}_$name"
      database_url="${MESH_PG_URL%/*}/${tag}_$name"
      db_files[$name]=""
    fi
    db_urls[$name]=$database_url
    # user first, and each one ready before the next: user writes the dev key pair the others use.
    mesh_spawn "$name" "$name"
    url_flags+=("--$name-url" "$spawned_url")
  done
}

# Starts process LABEL of service NAME on the service's database and a free port, and waits
# until it is ready. Each process has a consumer name of its own (MESH_CONSUMER_NAME unset: the
# name carries the pid); a caller's stable MESH_CONSUMER_NAME gets a replica's label appended, as
# two live replicas under one name would each take the other's pending entries for its own.
mesh_spawn() {
  local name=$1 label=$2 port pid consumer=${MESH_CONSUMER_NAME:-}
  [[ -z $consumer || $label == "$name" ]] || consumer+="-$label"
  port=$(free_port)
  DATABASE_URL="${db_urls[$name]}" \
    MESH_DATA_DIR="$dir" \
    MESH_LISTEN="127.0.0.1:$port" \
    MESH_LOG_FORMAT=json \
    MESH_CONSUMER_NAME="$consumer" \
    RUST_LOG=${RUST_LOG:-warn} \
    MESH_STARTING_CREDIT_CENTS=1000000000 \
    "target/$mesh_profile/$name" >"$dir/logs/$label.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  pid_flags+=(--pid "$label=$pid")
  spawned_url="http://127.0.0.1:$port"
  for _ in $(seq 600); do
    curl -fs "$spawned_url/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { say "$label exited:"; tail -n 20 "$dir/logs/$label.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fs "$spawned_url/readyz" >/dev/null || { say "$label not ready"; exit 1; }
}

# One more process of service NAME, after mesh_start: the same binary on the same database (a
# SQLite file is shared through BEGIN IMMEDIATE and a busy timeout), its own port and consumer
# name. Sets replica_url (its HTTP address; url_flags keeps the first process's only).
mesh_add_replica() {
  local name=$1 n
  n=$((${replicas[$name]:-1} + 1))
  replicas[$name]=$n
  mesh_spawn "$name" "$name-$n"
  replica_url=$spawned_url
}

# The URL flags bench-orders takes (it needs no warehouse URL).
bench_url_flags() {
  local i
  for ((i = 0; i < ${#url_flags[@]}; i += 2)); do
    [[ ${url_flags[i]} == --warehouse-url ]] || printf '%s\n%s\n' "${url_flags[i]}" "${url_flags[i + 1]}"
  done
}

machine_line() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
  # The database URL without its credentials: this line goes into logs and docs.
  local database=${MESH_PG_URL:+PostgreSQL ${MESH_PG_URL%%://*}://${MESH_PG_URL#*@}}
  echo "redis:   $(redis-server --version | awk '{print $3}'); database: ${database:-SQLite files (WAL)}; date: $(date -u +%Y-%m-%dT%H:%MZ)"
}
