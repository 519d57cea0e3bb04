#!/usr/bin/env bash
# Build the sales-forecast image with BuildKit, OCI labels from git and pyproject.toml,
# and (when one is given) a CA bundle for pip that never reaches an image layer.
#
#   hack/build-image.sh [TAG] [extra docker build arguments...]
#
# TAG defaults to sales-forecast:dev. Environment:
#   BASE_IMAGE       base image (default: the Dockerfile's python:3.11-slim-bookworm);
#                    offline, use the one hack/base-image.sh makes:
#                    BASE_IMAGE=sales-forecast-base:bookworm hack/build-image.sh
#   BUILD_CA_BUNDLE  PEM file pip inside the build should trust; defaults to PIP_CERT,
#                    then SSL_CERT_FILE, then the system's bundle where one exists
#                    (/etc/ssl/certs/ca-certificates.crt), else none (pip's own CA
#                    list). Handed over as a BuildKit secret, for the pip step only.
#   IMAGE_SOURCE     org.opencontainers.image.source (default: git remote 'origin'
#                    when it is an https address, else "unknown").
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-sales-forecast:dev}
shift || true

say() { printf 'build-image: %s\n' "$*" >&2; }

# shellcheck source=lib/docker.sh
source "$top/hack/lib/docker.sh"
cli=$(buildkit_cli)
system_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$system_bundle" ] || system_bundle=
ca_bundle=${BUILD_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-$system_bundle}}}
args=(--tag "$tag")

if [ -n "${BASE_IMAGE:-}" ]; then
  args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi
if [ -n "$ca_bundle" ]; then
  [ -s "$ca_bundle" ] || {
    say "CA bundle '$ca_bundle' (from BUILD_CA_BUNDLE, PIP_CERT or SSL_CERT_FILE)" \
      "is missing or empty; point BUILD_CA_BUNDLE at a PEM file"
    exit 1
  }
  args+=(--secret "id=pip_ca,src=$ca_bundle")
fi

version=$(python3 -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$top/pyproject.toml")
revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$top" status --porcelain \
  -- service training requirements/runtime.txt data/wineind.csv Dockerfile)" ]; then
  # Uncommitted changes to what goes into the image: the commit alone would lie.
  revision="$revision-dirty"
fi
# Only a public address says where the source is; a clone of a local path does not.
source_url=${IMAGE_SOURCE:-$(git -C "$top" remote get-url origin 2>/dev/null || true)}
[[ "$source_url" =~ ^https:// ]] || source_url=${IMAGE_SOURCE:-unknown}
args+=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "SOURCE=$source_url")

say "$cli build ${tag} (base ${BASE_IMAGE:-Dockerfile default}," \
  "CA bundle ${ca_bundle:-none}, version $version, revision $revision)"
previous=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
start=$(date +%s)
DOCKER_BUILDKIT=1 "$cli" build "${args[@]}" "$@" "$top"
say "built $tag in $(($(date +%s) - start)) s"

# The image this tag named before is now untagged; remove it so rebuilds do not pile
# up. The layers the new image shares stay, and an image a container still uses is
# kept by the engine (the error is ignored).
current=$(docker image inspect --format '{{.Id}}' "$tag")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi
