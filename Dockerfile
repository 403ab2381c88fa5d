# syntax=docker/dockerfile:1
# One image with the five service binaries; compose.yaml picks the binary with `command`.
#   docker build -t mesh:latest .

# The builder must match the runtime's Debian release: a binary linked against a newer glibc
# (rust:1 on trixie) does not start on bookworm.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins -p user -p inventory -p store -p payment -p warehouse -p meshctl \
 && mkdir -p /out \
 && cp target/release/user target/release/inventory target/release/store \
       target/release/payment target/release/warehouse target/release/meshctl /out/

FROM debian:bookworm-slim
# curl: the compose healthchecks ask /readyz.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/mesh --create-home --shell /usr/sbin/nologin mesh \
 && mkdir -p /etc/mesh-acl && chown mesh /etc/mesh-acl
COPY --from=build /out/ /usr/local/bin/
USER mesh
WORKDIR /var/lib/mesh
ENV MESH_DATA_DIR=/var/lib/mesh \
    MESH_LOG_FORMAT=json
EXPOSE 8001 8002 8003 8004 8005
