#!/usr/bin/env bash
# Make a local Debian bookworm base image with Python 3.11, for building the service
# image where no registry can be reached (no 'docker pull' possible).
#
#   hack/base-image.sh            make sales-forecast-base:bookworm unless it exists
#   hack/base-image.sh --force    make it again from a fresh debootstrap
#
# Then: docker build --build-arg BASE_IMAGE=sales-forecast-base:bookworm .
#
# The root filesystem comes from Debian's own packages (debootstrap, minbase variant),
# so it needs only the Debian package mirror. The tarball is kept in .cache/base-image/
# (git-ignored) so a second machine state or a removed image costs an import, not a
# new debootstrap. Needs root and a running engine (hack/docker-engine.sh start).
#
# Known difference from the official python:3.11-slim-bookworm image: the interpreter is
# Debian's (/usr/bin/python3, 3.11.2) instead of a source build in /usr/local, and the
# root filesystem has no bookworm-security updates. The Dockerfile works with both; this
# base is for offline builds and tests, not for publishing.
set -euo pipefail

image=${BASE_IMAGE_NAME:-sales-forecast-base:bookworm}
suite=bookworm
packages=python3,python3-venv,ca-certificates
top=$(cd "$(dirname "$0")/.." && pwd)
cache_dir="$top/.cache/base-image"
tarball="$cache_dir/$suite-minbase-rootfs.tar"

say() { printf 'base-image: %s\n' "$*" >&2; }

host_debian_mirror() {
  # Use the mirror this machine's apt already trusts, so the script names no host
  # itself; debootstrap's built-in default applies when none is found.
  # BASE_IMAGE_MIRROR overrides both.
  if [ -n "${BASE_IMAGE_MIRROR:-}" ]; then
    printf '%s\n' "$BASE_IMAGE_MIRROR"
    return 0
  fi
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources
    /etc/apt/sources.list.d/*.list)
  cat "${files[@]}" 2>/dev/null \
    | grep -oE '(URIs:|^deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
    | grep -oE 'https?://[^[:space:]]+' | sed -n 1p || true
}

make_rootfs_tarball() {
  command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
  }

  local rootfs
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/sales-forecast-rootfs.XXXXXX")
  # The trap removes the half-made tree if debootstrap fails.
  trap 'rm -rf "$rootfs"' RETURN

  local mirror mirror_arg=()
  mirror=$(host_debian_mirror)
  [ -z "$mirror" ] || mirror_arg=("$mirror")
  say "debootstrap $suite ($packages) into $rootfs${mirror:+ from $mirror}"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" \
    "${mirror_arg[@]}" >"$cache_dir/debootstrap.log" 2>&1 || {
    say "debootstrap failed; last lines of $cache_dir/debootstrap.log:"
    tail -n 20 "$cache_dir/debootstrap.log" >&2
    return 1
  }

  # Package lists, downloaded .debs, manuals and translations are only weight in an
  # image (about 50 MB here); the copyright files stay, as in Debian's slim images.
  # The dpkg rule keeps packages installed later from bringing them back.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/*
  find "$rootfs"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs"/usr/share/doc -mindepth 1 -type d -empty -delete
  cat >"$rootfs"/etc/dpkg/dpkg.cfg.d/sales-forecast-slim <<'CFG'
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
CFG

  tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  say "rootfs cached at $tarball ($(du -h "$tarball" | cut -f1))"
}

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  *)
    say "unknown argument '$1'; use no argument, or --force to remake the image"
    exit 64
    ;;
esac

if ! $force && docker image inspect "$image" >/dev/null 2>&1; then
  say "$image exists; nothing to do (use --force to remake it)"
  exit 0
fi

mkdir -p "$cache_dir"
if $force || [ ! -s "$tarball" ]; then
  make_rootfs_tarball
fi

# LANG matches the official Python images, so text I/O defaults to UTF-8 in both.
say "importing $tarball as $image"
docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  "$tarball" "$image" >/dev/null
docker run --rm "$image" python3 -c 'import sys, venv, ssl; print(sys.version)' \
  | sed 's/^/base-image: python /' >&2
