#!/usr/bin/env bash
# Fuzzes every service's HTTP API from its own OpenAPI document with Schemathesis
# (property-based: examples, boundary values, then random data), against a private mesh
# (scripts/lib/mesh.sh: release build, its own Redis and SQLite files), authenticated as the
# admin (user, inventory) or as a shopper (store, payment, warehouse).
#
# Checks: no 5xx (`not_a_server_error`), every status, content type, header and body as the
# document says, invalid data refused, an operation needing a token refused without one, and
# unsupported methods refused. Any failure fails the script, with a reproducing curl command in
# its output. docs/fuzzing.md records the runs.
#
# Usage: scripts/fuzz-api.sh [SECONDS per service, default 60] [SERVICE ...]
# Schemathesis comes from PyPI into .venv-fuzz unless `schemathesis` is on PATH
# (FUZZ_SCHEMATHESIS=/path/to/schemathesis to choose).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(user inventory store payment warehouse)

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
source scripts/lib/mesh.sh
mesh_start
machine_line
echo "schemathesis: $("$st" --version | awk '{print $NF}'); ${seconds} s per service"

url_of() { local i; for ((i = 0; i < ${#url_flags[@]}; i += 2)); do [[ ${url_flags[i]} == "--$1-url" ]] && echo "${url_flags[i + 1]}"; done; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
login() {
  curl -fsS -H 'content-type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" \
    "$(url_of user)/auth/login" | json_field access_token
}
admin=$(login "$MESH_ADMIN_EMAIL" "$MESH_ADMIN_PASSWORD")
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d '{"email":"fuzz-shopper@example.com","password":"fuzz-shopper-password"}' "$(url_of user)/auth/register"
shopper=$(login fuzz-shopper@example.com fuzz-shopper-password)
# Something to find: a product for the store's catalog and the fuzzer's ids.
curl -fsS -o /dev/null -H "authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"name":"fuzz mug","price_cents":1000,"stock":1000000}' "$(url_of inventory)/products"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,unsupported_method
failed=()
for service in "${targets[@]}"; do
  token=$shopper
  [[ $service == user || $service == inventory ]] && token=$admin
  echo "== $service"
  if ! "$st" run "$(url_of "$service")/openapi.json" \
    --checks "$checks" \
    --header "Authorization: Bearer $token" \
    --phases examples,coverage,fuzzing \
    --max-time "$seconds" \
    --workers 2 \
    --seed 20261205 \
    --suppress-health-check all; then
    failed+=("$service")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failures in ${failed[*]}"
  exit 1
fi
echo "fuzz: no failure in ${targets[*]}"
