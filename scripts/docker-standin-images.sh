#!/usr/bin/env bash
# Makes local stand-ins for the public images ./Dockerfile and compose.yaml use, for a machine
# that reaches Debian's package mirror (and crates.io) but no container registry. Each is a
# Debian bookworm root file system made by debootstrap and imported with `docker import`:
#
#   mesh-standin/debian:bookworm-slim   for debian:bookworm-slim (the runtime stage's base)
#   mesh-standin/rust:1-bookworm        for rust:1-bookworm: gcc and libc6-dev, this machine's
#                                       Rust toolchain (`rustc --print sysroot`) and its CA
#                                       certificates, so cargo reaches crates.io from the build
#   mesh-standin/redis:7                for redis:7 (Debian's redis-server, 7.0)
#   mesh-standin/postgres:15            for postgres:16 (Debian's PostgreSQL 15, with an
#                                       entrypoint that does what the image's does)
#
# Then the real multi-stage build runs here: `source scripts/standin-env.sh` (or put its lines
# in .env) and `docker-compose build`. Nothing in the images is mesh code.
#
# Needs root (debootstrap and chroot), debootstrap (apt-get install debootstrap), docker, rustc.
# Environment: MIRROR (default http://deb.debian.org/debian); STANDIN_ONLY="rust debian" makes
# only those.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mirror=${MIRROR:-http://deb.debian.org/debian}
only=${STANDIN_ONLY:-debian rust redis postgres}

die() { echo "docker-standin-images: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }
[[ $(id -u) == 0 ]] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap docker rustc; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/mesh-standin.XXXXXX")
trap 'rm -rf "$work"' EXIT

say "debootstrap bookworm (minbase) into $work/base"
debootstrap --variant=minbase bookworm "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

# A copy of the base with extra Debian packages (installed in a chroot, then the caches dropped).
variant() {
  local name=$1
  shift
  cp -a "$work/base" "$work/$name"
  if (($#)); then
    cp /etc/resolv.conf "$work/$name/etc/resolv.conf"
    chroot "$work/$name" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive chroot "$work/$name" \
      apt-get install -y -q --no-install-recommends "$@" >/dev/null
  fi
  rm -rf "$work/$name"/var/cache/apt/archives/*.deb "$work/$name"/var/lib/apt/lists/* \
    "$work/$name/etc/resolv.conf"
}

import() {
  local name=$1 tag=$2
  shift 2
  say "docker import $tag"
  tar -C "$work/$name" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$@" - "$tag" >/dev/null
}

for image in $only; do
  case $image in
    debian)
      variant debian
      import debian mesh-standin/debian:bookworm-slim --change 'CMD ["bash"]'
      ;;
    rust)
      say "builder: gcc, libc6-dev and this machine's Rust toolchain"
      variant rust ca-certificates gcc libc6-dev make pkg-config
      sysroot=$(rustc --print sysroot)
      mkdir -p "$work/rust/usr/local/rustup/toolchains" "$work/rust/usr/local/cargo/bin"
      # The toolchain without its HTML docs; cargo, rustc and rustdoc called directly (no
      # rustup proxy).
      tar -C "$sysroot" --exclude ./share/doc -c . |
        tar -C "$work/rust/usr/local/rustup/toolchains" --one-top-level=host -x
      for bin in cargo rustc rustdoc; do
        ln -s "/usr/local/rustup/toolchains/host/bin/$bin" "$work/rust/usr/local/cargo/bin/$bin"
      done
      # This machine's CA bundle: the one that reaches crates.io from here (a proxy's CA too).
      cp /etc/ssl/certs/ca-certificates.crt "$work/rust/etc/ssl/certs/ca-certificates.crt"
      import rust mesh-standin/rust:1-bookworm \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'CMD ["bash"]'
      ;;
    redis)
      variant redis redis-server
      install -m 0755 scripts/standin/redis-entrypoint.sh "$work/redis/usr/local/bin/docker-entrypoint.sh"
      # A fresh named volume mounted on /data takes this directory's owner.
      mkdir -p "$work/redis/data"
      chroot "$work/redis" chown redis:redis /data
      import redis mesh-standin/redis:7 --change 'USER redis' --change 'WORKDIR /data' \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD ["redis-server"]' --change 'EXPOSE 6379'
      ;;
    postgres)
      variant postgres postgresql-15
      # The cluster Debian's package creates (on whatever port was free in the chroot) would be
      # the default of psql and pg_isready: PGDATA's server is the only one.
      rm -rf "$work/postgres/etc/postgresql/15/main" "$work/postgres/var/lib/postgresql/15/main"
      install -m 0755 scripts/standin/postgres-entrypoint.sh \
        "$work/postgres/usr/local/bin/docker-entrypoint.sh"
      mkdir -p "$work/postgres/docker-entrypoint-initdb.d" "$work/postgres/var/lib/postgresql/data"
      chroot "$work/postgres" chown postgres:postgres /var/lib/postgresql/data
      import postgres mesh-standin/postgres:15 --change 'ENV PGDATA=/var/lib/postgresql/data' \
        --change 'ENV PGPORT=5432' \
        --change 'ENTRYPOINT ["bash", "/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'EXPOSE 5432'
      ;;
    *) die "unknown stand-in $image (debian, rust, redis, postgres)" ;;
  esac
  rm -rf "${work:?}/$image"
done

docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^mesh-standin/' >&2
say "done; use them with: source scripts/standin-env.sh"
