#!/usr/bin/env bash
# End-to-end ordering benchmark (issue 5): builds in release, starts a private mesh (redis-server
# and the five services on free loopback ports, own temp data dir and SQLite files:
# scripts/lib/mesh.sh), then runs `bench-orders` against it: a max-throughput phase and a latency
# phase at half that rate. Prints orders/s shipped, p50/p95/p99 POST → shipped, each process's CPU
# share per phase, and a table of each process's RSS: after start-up (the services ready, before
# any request), idle after the load (with its length), and peak. Stops everything it started when
# done (or on Ctrl-C). `--latency-duration 0` skips the latency phase.
#
# Usage: scripts/bench-orders.sh [bench-orders flags]   e.g. --shoppers 32 --duration 20 --rate 200
# (see `target/release/bench-orders --help`). BENCH_KEEP=1 keeps the temp dir (logs) afterwards.
# BENCH_POSTGRES_URL=postgres://user:pw@host:port/db runs the services on PostgreSQL instead: a
# fresh database per service (bench_<service>, dropped and re-created) on that server.
# BENCH_PROFILE=dist measures the services as the image (Dockerfile) builds them: whole-program
# optimisation, less code to load; the footprint target is measured so (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tag=bench
MESH_KEEP=${BENCH_KEEP:-}
MESH_PG_URL=${BENCH_POSTGRES_URL:-}
MESH_PROFILE=${BENCH_PROFILE:-release}
source scripts/lib/mesh.sh
mesh_start
machine_line
mapfile -t bench_urls < <(bench_url_flags)
timeout 600 target/release/bench-orders "${bench_urls[@]}" "${pid_flags[@]}" "$@"
