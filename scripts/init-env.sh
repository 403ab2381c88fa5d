#!/usr/bin/env bash
# Writes the secrets compose.yaml requires into ./.env, once: each one that .env does not set
# yet gets a fresh random value (hex: safe in URLs and ACL files); nothing already there is
# changed. The file is made readable by its owner only. Prints the names it added, never a value.
#
#   scripts/init-env.sh                    then set MESH_ADMIN_EMAIL / MESH_ADMIN_PASSWORD too
#
# Secrets: POSTGRES_PASSWORD (the server's superuser, used by nothing in the mesh),
# MESH_PG_PASSWORD_<SERVICE> (each service's own database role), MESH_REDIS_PASSWORD_<SERVICE>
# (each service's Redis user), MESH_REDIS_PASSWORD_OPERATOR (meshctl's Redis user) and
# MESH_REDIS_PASSWORD_ADMIN (the Redis Cluster's admin in compose.cluster.yaml; unused otherwise).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

env_file=${ENV_FILE:-.env}
touch "$env_file"
chmod 600 "$env_file"
names=(POSTGRES_PASSWORD MESH_REDIS_PASSWORD_OPERATOR MESH_REDIS_PASSWORD_ADMIN)
for service in USER INVENTORY STORE PAYMENT WAREHOUSE; do
  names+=("MESH_PG_PASSWORD_$service" "MESH_REDIS_PASSWORD_$service")
done
added=()
for name in "${names[@]}"; do
  if ! grep -q "^$name=" "$env_file"; then
    # A final newline may be missing from a file edited by hand.
    [[ -s $env_file && $(tail -c1 "$env_file") != "" ]] && echo >>"$env_file"
    echo "$name=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" >>"$env_file"
    added+=("$name")
  fi
done
if ((${#added[@]})); then
  echo "init-env: added to $env_file: ${added[*]}"
else
  echo "init-env: $env_file already has every secret"
fi
grep -q '^MESH_ADMIN_EMAIL=' "$env_file" || echo "init-env: now set MESH_ADMIN_EMAIL and MESH_ADMIN_PASSWORD (12+ characters) in $env_file"
