#!/usr/bin/env bash
# Builds a local equivalent of the public python:3.11-slim image for machines that reach no
# image registry: a minimal Debian bookworm root filesystem made by debootstrap, with Debian's
# python3 (3.11) and venv support, imported as a single-layer image with `docker import`.
#
# usage: docker/build_base.sh [IMAGE]     (default apt/python-base:3.11-bookworm)
# env:   DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

IMAGE=${1:-apt/python-base:3.11-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# The same runtime packages python:3.11-slim carries; python3-venv gives ensurepip + pip so the
# service Dockerfiles can build their virtualenv the same way on either base. No compilers.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata

command -v docker >/dev/null || { echo "docker CLI is missing" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root (run with sudo)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
    # A fresh machine has no debootstrap; Debian's archive is reachable, so fetch it (as sysdeps does cmake).
    echo ">> installing debootstrap from Debian's archive"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
        || { echo "debootstrap is missing and could not be installed: apt-get install debootstrap" >&2; exit 1; }
fi

ROOTFS=$(mktemp -d /var/tmp/apt-base-rootfs.XXXXXX)
cleanup() {
    # debootstrap may leave proc/sys mounted when it fails half-way; unmount before deleting.
    for m in proc sys dev/pts; do umount "$ROOTFS/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

echo ">> debootstrap $SUITE from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR"

echo ">> trimming package caches, docs and locales"
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'C.UTF-8' -exec rm -rf {} +
# Keep apt usable inside derived images (apt-get update restores the lists).
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" > "$ROOTFS/etc/apt/sources.list"

echo ">> docker import -> $IMAGE"
tar --numeric-owner --xattrs -C "$ROOTFS" --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'LABEL org.opencontainers.image.description="Debian bookworm + python3.11, built by docker/build_base.sh (debootstrap)"' \
      --change 'CMD ["python3"]' \
      - "$IMAGE"
docker run --rm "$IMAGE" python3 -c 'import sys, ssl, venv; print("base ok:", sys.version.split()[0], ssl.OPENSSL_VERSION)'
docker image ls "$IMAGE"
