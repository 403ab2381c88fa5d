#!/usr/bin/env bash
# The chaos suite (issue 12, docs/chaos.md): the five real service binaries and a real
# redis-server (AOF, appendfsync always) under a load of orders from several shoppers who retry
# with the same Idempotency-Key, while a seeded schedule kill -9s every service and Redis, takes
# the database away, and ends with the drill "Redis kill -9 + payment kill -9". At the end it
# checks the services' own records (one order per key, every order terminal or shipped, money
# and stock conserved, nothing pending, dead-letter empty) and prints a report with the seed.
#
# It runs the same code as the test suite's short variant
# (e2e/tests/saga/chaos.rs::orders_survive_kill_9_of_every_process_redis_and_a_database_outage),
# at scale. Every process listens on a free port (never 8001-8005 or 6379) and lives in temp
# dirs of its own, so it can run beside a mesh or a soak.
#
# Usage: scripts/chaos.sh [ORDERS]            (default 5000)
#   MESH_CHAOS_SHOPPERS=16        shoppers placing orders concurrently
#   MESH_CHAOS_SEED=<n>           replay a schedule (printed by every run)
#   MESH_CHAOS_SETTLE_TARGET_MS=5000   longest time from the last POST to the last order settled
#   MESH_CHAOS_RATE=<n>           orders/s from all shoppers together (default: unpaced; pace
#                                 it below the mesh's capacity to measure recovery, not backlog)
#   MESH_CHAOS_NO_FAULTS=1        the same load with no fault: the settle time's baseline
#   MESH_CHAOS_PROFILE=release    cargo profile of the binaries (debug: no optimised build)
#   TEST_DATABASE_URL=postgres://…  run on PostgreSQL: the run starts a private cluster
#                                 (initdb/pg_ctl, as the postgres user when root) and stops
#                                 and restarts it as the database outage; the URL itself is
#                                 only a switch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export MESH_CHAOS_ORDERS=${1:-${MESH_CHAOS_ORDERS:-5000}}
export MESH_CHAOS_SHOPPERS=${MESH_CHAOS_SHOPPERS:-16}
export MESH_CHAOS_SETTLE_TARGET_MS=${MESH_CHAOS_SETTLE_TARGET_MS:-5000}
profile=${MESH_CHAOS_PROFILE:-release}
flags=()
[[ $profile == release ]] && flags=(--release)

echo "chaos: building the binaries (${profile})" >&2
cargo build "${flags[@]}" --workspace --bins >&2
echo "chaos: ${MESH_CHAOS_ORDERS} orders from ${MESH_CHAOS_SHOPPERS} shoppers" >&2
exec cargo test "${flags[@]}" -p e2e --all-features --test saga -- \
  chaos::orders_survive_kill_9_of_every_process_redis_and_a_database_outage --exact --nocapture
