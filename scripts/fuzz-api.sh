#!/usr/bin/env bash
# Fuzzes every service's HTTP API from its own OpenAPI document with Schemathesis
# (property-based: the documents' examples, boundary values and type mutations, then random
# data, valid and invalid), against a private mesh (scripts/lib/mesh.sh: release build, its own
# redis-server on a free port, its own SQLite files, every service on a free loopback port — never
# the fixed ports of scripts/up.sh), once authenticated as a shopper and once as the admin.
#
# Checks: no 5xx (`not_a_server_error`), every status, content type, header and body as the
# document says, invalid data refused, an operation needing a token refused without one, and
# unsupported methods refused. Any failure fails the script, with a reproducing curl command in
# its output. docs/fuzzing.md records the runs.
#
# Usage: scripts/fuzz-api.sh [CASES per operation and phase, default 50] [SERVICE ...]
# The seed is fixed (FUZZ_SEED to change it), so a run is repeatable. Schemathesis comes from
# PyPI into .venv-fuzz unless `schemathesis` is on PATH (FUZZ_SCHEMATHESIS=/path/to/schemathesis
# to choose). FUZZ_REPORT_DIR=DIR keeps a JUnit report per run there. FUZZ_WORKERS (default 1):
# Schemathesis workers per run (two crashed Hypothesis's coverage phase, docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cases=${1:-50}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(user inventory store payment warehouse)
seed=${FUZZ_SEED:-20261205}

st=${FUZZ_SCHEMATHESIS:-$(command -v schemathesis || true)}
if [[ -z $st ]]; then
  if [[ ! -x .venv-fuzz/bin/schemathesis ]]; then
    echo "fuzz: installing schemathesis into .venv-fuzz (PyPI)" >&2
    python3 -m venv .venv-fuzz
    .venv-fuzz/bin/pip install -q 'schemathesis>=4.0,<5'
  fi
  st=.venv-fuzz/bin/schemathesis
fi

tag=fuzz
# The fuzzer is one client: it must meet the per-address limits of the user service no sooner
# than its own budget runs out, and a slow CI machine must not turn a hash wait into a 503.
export MESH_PASSWORD_RESET_MAX_PER_IP=1000000 MESH_LOGIN_MAX_FAILURES_PER_IP=1000000
export MESH_PASSWORD_HASH_WAIT_MS=60000
source scripts/lib/mesh.sh
mesh_start
machine_line
echo "schemathesis: $("$st" --version | awk '{print $NF}'); $cases cases per operation and phase; seed $seed"

url_of() { local i; for ((i = 0; i < ${#url_flags[@]}; i += 2)); do [[ ${url_flags[i]} == "--$1-url" ]] && echo "${url_flags[i + 1]}"; done; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
login() {
  curl -fsS -H 'content-type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" \
    "$(url_of user)/auth/login" | json_field access_token
}
token_of() {
  case $1 in
    admin) login "$MESH_ADMIN_EMAIL" "$MESH_ADMIN_PASSWORD" ;;
    shopper) login fuzz-shopper@example.com fuzz-shopper-password ;;
  esac
}
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d '{"email":"fuzz-shopper@example.com","password":"fuzz-shopper-password"}' "$(url_of user)/auth/register"
# Something to find: a product for the store's catalog and the fuzzer's ids.
curl -fsS -o /dev/null -H "authorization: Bearer $(token_of admin)" -H 'content-type: application/json' \
  -d '{"name":"fuzz mug","price_cents":1000,"stock":1000000}' "$(url_of inventory)/products"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,unsupported_method
failed=()
summary=()
# One Schemathesis run: service, role, then filter options. Prints its summary; records failures.
fuzz() {
  local service=$1 role=$2 out
  shift 2
  out=$(mktemp)
  echo "== $service as $role $*"
  local report=()
  [[ -n ${FUZZ_REPORT_DIR:-} ]] && mkdir -p "$FUZZ_REPORT_DIR" &&
    report=(--report junit --report-junit-path "$FUZZ_REPORT_DIR/$service-$role${1:+-logout}.xml")
  if "$st" run "$(url_of "$service")/openapi.json" \
    --checks "$checks" \
    --header "Authorization: Bearer $(token_of "$role")" \
    --phases examples,coverage,fuzzing \
    --max-examples "$cases" \
    --workers "${FUZZ_WORKERS:-1}" \
    --seed "$seed" \
    --suppress-health-check all \
    "${report[@]}" "$@" 2>&1 | tee "$out"; then
    :
  else
    failed+=("$service as $role")
  fi
  summary+=("$(printf '%-10s %-8s %s' "$service" "$role" "$(grep -Eo '[0-9]+ generated' "$out" | head -1 || echo '? generated') test cases${1:+ ($*)}")")
  rm -f "$out"
}
for service in "${targets[@]}"; do
  for role in shopper admin; do
    if [[ $service == user ]]; then
      # Logging out revokes the run's own token: log-out gets a run (and a token) of its own.
      fuzz "$service" "$role" --exclude-path /auth/logout
      fuzz "$service" "$role" --include-path /auth/logout
    else
      fuzz "$service" "$role"
    fi
  done
done
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: failures in: ${failed[*]}"
  exit 1
fi
echo "fuzz: no failure in ${targets[*]} (as shopper and as admin)"
