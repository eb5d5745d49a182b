#!/usr/bin/env bash
# Build (or reuse) the test-bed images: debian:bookworm base, then the db and
# app host images FROM it, never pulling. Docker's layer cache makes re-runs fast.
#
#   PGOPS_EXTRA_CA=/path/ca.crt   extra CA bundle trusted inside the images
#                                 (default: the host's bundle when it exists)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
images="$root/molecule/images"
base=${PGOPS_BASE_IMAGE:-debian:bookworm}
mirror=${PGOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
extra_ca=${PGOPS_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}
export DOCKER_BUILDKIT=0   # the classic builder needs no buildx plugin and never pulls with --pull=false

ensure_base() {
  if docker image inspect "$base" >/dev/null 2>&1; then
    echo "base image $base: cached"
    return
  fi
  echo "base image $base: pulling..."
  if timeout 120 docker pull "$base" >/dev/null 2>&1; then
    return
  fi
  echo "base image $base: pull failed (no registry?), building it with debootstrap..."
  command -v debootstrap >/dev/null || "$root/scripts/testbed/host-deps.sh"
  local rootfs
  rootfs=$(mktemp -d /tmp/pgops-bookworm.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    echo "debootstrap failed, see $rootfs.log" >&2; exit 1; }
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$base" >/dev/null
  rm -f "$rootfs.log"
  echo "base image $base: imported"
}

build() {  # build <name> <dir>
  local tag=$1 dir=$2 ctx
  ctx=$(mktemp -d /tmp/pgops-ctx.XXXXXX)
  cp -a "$dir"/. "$ctx"/
  if [ -s "$extra_ca" ]; then cp "$extra_ca" "$ctx/extra-ca.crt"; else : >"$ctx/extra-ca.crt"; fi
  echo "image $tag: building (cached layers are reused)..."
  if ! docker build --pull=false -q -t "$tag" --build-arg "BASE_IMAGE=$base" "$ctx" >"$ctx.log" 2>&1; then
    cat "$ctx.log" >&2; rm -rf "$ctx" "$ctx.log"; exit 1
  fi
  rm -rf "$ctx" "$ctx.log"
}

ensure_base
build pgops-db:bookworm "$images/db"
build pgops-app:bookworm "$images/app"
echo "test-bed images ready: pgops-db:bookworm pgops-app:bookworm"
