# Sourced (`source scripts/standin-env.sh`): points compose.yaml and ./Dockerfile at the local
# stand-ins scripts/docker-standin-images.sh makes, instead of the public images. The same lines
# (without `export`) may go into .env.
export MESH_RUST_IMAGE=mesh-standin/rust:1-bookworm
export MESH_RUNTIME_IMAGE=mesh-standin/debian:bookworm-slim
export MESH_REDIS_IMAGE=mesh-standin/redis:7
export MESH_POSTGRES_IMAGE=mesh-standin/postgres:15
