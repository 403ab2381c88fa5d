# One image with the five service binaries and meshctl; compose.yaml picks the binary with
# `command`.
#   docker build -t mesh:latest .
#
# The base images are build arguments: the public rust and debian images by default, or local
# stand-ins made from Debian packages where no registry is reachable
# (scripts/docker-standin-images.sh, then `source scripts/standin-env.sh`: compose passes them on).
# Plain Dockerfile syntax, so the classic builder (docker-compose 1.29's default) builds it too.
#
# The builder must match the runtime's Debian release: a binary linked against a newer glibc
# (rust:1 on trixie) does not start on bookworm.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# Empty: cargo's default (every core).
ARG CARGO_BUILD_JOBS=
WORKDIR /src
ENV BINS="user inventory store payment warehouse meshctl"

# The dependencies first, in their own layer: built from the manifests and the lock file with
# stub sources, so a change to the mesh's code does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# Build settings (the allocator's, .cargo/config.toml) before anything is compiled.
COPY .cargo .cargo/
COPY common/Cargo.toml common/
COPY user/Cargo.toml user/
COPY inventory/Cargo.toml inventory/
COPY store/Cargo.toml store/
COPY payment/Cargo.toml payment/
COPY warehouse/Cargo.toml warehouse/
COPY meshctl/Cargo.toml meshctl/
COPY mesh-bench/Cargo.toml mesh-bench/
COPY e2e/Cargo.toml e2e/
RUN set -eu; [ -n "${CARGO_BUILD_JOBS}" ] || unset CARGO_BUILD_JOBS; \
    for crate in common user inventory store payment warehouse meshctl mesh-bench e2e; do \
      mkdir -p "$crate/src/bin"; : >"$crate/src/lib.rs"; echo 'fn main() {}' >"$crate/src/main.rs"; \
    done; \
    echo 'fn main() {}' >common/src/bin/mesh-testworker.rs; \
    cargo build --profile dist --locked --bins $(printf -- '-p %s ' $BINS); \
    rm -rf common/src user/src inventory/src store/src payment/src warehouse/src meshctl/src \
      mesh-bench/src e2e/src

COPY . .
# COPY keeps the sources' own times, older than the stubs' build: touch them so cargo rebuilds.
# The dist profile (Cargo.toml) is release with whole-program optimisation: less machine code,
# so less memory per idle service; several minutes per binary to build. The binaries lose their
# debug info (the profile keeps line tables): backtraces still name the functions.
RUN set -eu; [ -n "${CARGO_BUILD_JOBS}" ] || unset CARGO_BUILD_JOBS; \
    find common user inventory store payment warehouse meshctl mesh-bench e2e -name '*.rs' \
      -exec touch {} +; \
    cargo build --profile dist --locked --bins $(printf -- '-p %s ' $BINS); \
    mkdir -p /out; \
    for bin in $BINS; do cp "target/dist/$bin" /out/; done; \
    strip --strip-debug /out/*

FROM ${RUNTIME_IMAGE}
# curl: the compose healthchecks ask /readyz. The services run as an unprivileged user.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --system --uid 10001 --home-dir /var/lib/mesh --create-home --shell /usr/sbin/nologin mesh \
 && mkdir -p /etc/mesh-acl && chown mesh /etc/mesh-acl
COPY --from=build /out/ /usr/local/bin/
USER mesh
WORKDIR /var/lib/mesh
ENV MESH_DATA_DIR=/var/lib/mesh \
    MESH_LOG_FORMAT=json
# SIGTERM drains: the API stops accepting, workers finish their in-flight messages and ack them
# (MESH_SHUTDOWN_GRACE_MS). Run it with an init (compose: `init: true`) so the signal reaches it.
STOPSIGNAL SIGTERM
EXPOSE 8001 8002 8003 8004 8005
