#!/usr/bin/env bash
# Builds mesh-base:bookworm, the one image compose.offline.yaml runs, for machines that reach
# Debian's package mirror but no container registry: a Debian bookworm root file system made by
# debootstrap (with redis-server, PostgreSQL 15 and curl), imported with `docker import`. It
# holds no mesh code: the override mounts ./target/release, which this script builds on the host
# (a bookworm host, so the binaries' glibc matches the image's).
#
# Needs root, debootstrap (apt-get install debootstrap), docker and cargo.
# Environment: MIRROR (default http://deb.debian.org/debian), IMAGE (default mesh-base:bookworm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mirror=${MIRROR:-http://deb.debian.org/debian}
image=${IMAGE:-mesh-base:bookworm}

die() { echo "docker-offline-images: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap docker cargo; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
if ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
  echo "docker-offline-images: warning: this host is not Debian bookworm; binaries built here" \
    "may need a newer glibc than the image has" >&2
fi

echo "== building the service binaries (release)" >&2
cargo build --release --locked --bins -p user -p inventory -p store -p payment -p warehouse -p meshctl

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/mesh-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

echo "== debootstrap bookworm into $rootfs" >&2
debootstrap --variant=minbase \
  --include=ca-certificates,curl,redis-server,postgresql-15 \
  bookworm "$rootfs" "$mirror"

# The services' user and data dir (as in ./Dockerfile), and a redis-owned /data so a fresh
# named volume mounted there is writable by redis.
chroot "$rootfs" useradd --system --uid 10001 --home-dir /var/lib/mesh --create-home \
  --shell /usr/sbin/nologin mesh
# Where `meshctl acl` writes Redis's users (the redis-acl service), readable by redis.
mkdir -p "$rootfs/etc/mesh-acl"
chroot "$rootfs" chown mesh /etc/mesh-acl
mkdir -p "$rootfs/data"
chroot "$rootfs" chown redis:redis /data
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

echo "== docker import as $image" >&2
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV MESH_DATA_DIR=/var/lib/mesh' \
  --change 'ENV MESH_LOG_FORMAT=json' \
  --change 'WORKDIR /var/lib/mesh' \
  - "$image"

echo "done. Start the mesh with:" >&2
echo "  docker-compose -f compose.yaml -f compose.offline.yaml up -d" >&2
