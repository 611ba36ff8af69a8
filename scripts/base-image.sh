#!/usr/bin/env bash
# Makes sure the container base image (default debian:bookworm-slim) exists in
# the local Docker engine, without Docker Hub when it is out of reach:
#   1. present already            -> nothing to do
#   2. `docker pull` works         -> pulled (skipped with MATID_BASE_OFFLINE=1)
#   3. otherwise                   -> built from Debian packages:
#      debootstrap --variant=minbase bookworm into a temporary folder, from the
#      apt mirror this host uses (or MATID_DEBIAN_MIRROR), then `docker import`
#      under the same tag. About a minute and ~120 MB; what air-gapped plants do.
# Usage: bash scripts/base-image.sh [TAG]     (needs root and a running dockerd)
set -euo pipefail
tag="${1:-${MATID_BASE_IMAGE:-debian:bookworm-slim}}"
docker_cli="${MATID_DOCKER:-docker}"

if "$docker_cli" image inspect "$tag" >/dev/null 2>&1; then
  echo "base-image: $tag is present"
  exit 0
fi
if [ "${MATID_BASE_OFFLINE:-0}" != 1 ] && timeout 60 "$docker_cli" pull -q "$tag" >/dev/null 2>&1; then
  echo "base-image: pulled $tag"
  exit 0
fi

# The mirror apt already uses on this host: the first http(s) URI of the main
# Debian suite in deb822 or one-line sources.
host_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://' /etc/apt/sources.list 2>/dev/null |
          grep -v -- '-security' | sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
          awk '{print $1}' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${MATID_DEBIAN_MIRROR:-$(host_mirror)}"
command -v debootstrap >/dev/null || {
  echo "base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

rootfs=$(mktemp -d /var/tmp/matid-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base-image: $tag not present and not pullable; debootstrap bookworm from $mirror"
start=$(date +%s)
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# What debian:bookworm-slim has and debootstrap does not: apt sources for
# bookworm, bookworm-updates and security on the same mirror, no caches.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${MATID_DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security} bookworm-security main
SOURCES
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | "$docker_cli" import \
  --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
echo "base-image: built $tag from Debian packages in $(( $(date +%s) - start ))s ($("$docker_cli" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
