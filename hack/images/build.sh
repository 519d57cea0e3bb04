#!/usr/bin/env bash
# Builds the system images of the offline cluster into the local Docker engine, with
# no registry: each is FROM scratch plus one static Go binary built here.
#
#   hack/images/build.sh [--force] [NAME...]   NAME: pause coredns metrics-server
#
#   pause           the pod sandbox (hack/images/pause/main.go)
#   coredns         cluster DNS, from the CoreDNS Go module
#   metrics-server  resource metrics for the HorizontalPodAutoscaler, from its module
#
# Binaries are kept in .cache/cluster/images/NAME (git-ignored) with a version stamp,
# and an image that already exists under its versioned tag is left alone, so a second
# run costs about a second. --force rebuilds the images (not the binaries). Needs a
# running Docker engine (hack/docker-engine.sh start). Go builds run one at a time
# under nice 19 and print their wall time.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=images
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"

IMAGES_SRC=$CLUSTER_TOP/hack/images
IMAGES_CACHE=$CLUSTER_CACHE/images
ALL_IMAGES=(pause coredns metrics-server)

go_build_env() {
    env CGO_ENABLED=0 GOFLAGS="-p=2 -buildvcs=false" nice -n 19 "$@"
}

# Prints the version the binary of NAME is built at; the stamp compares against it.
binary_version() {
    case $1 in
        pause) sha256sum "$IMAGES_SRC/pause/main.go" | cut -c1-12 ;;
        coredns) printf '%s\n' "$COREDNS_VERSION" ;;
        metrics-server) printf '%s\n' "$METRICS_SERVER_VERSION" ;;
    esac
}

image_tag() {
    case $1 in
        pause) printf '%s\n' "$PAUSE_IMAGE" ;;
        coredns) printf '%s\n' "$COREDNS_IMAGE" ;;
        metrics-server) printf '%s\n' "$METRICS_SERVER_IMAGE" ;;
    esac
}

compile() {
    local name=$1 out=$2
    case $name in
        pause)
            (cd "$IMAGES_SRC/pause" && go_build_env go build -trimpath \
                -ldflags "-s -w" -o "$out" .)
            ;;
        coredns)
            # The module root is CoreDNS's main package, with the default plugin set.
            go_build_env env GOBIN="$(dirname "$out")" go install -trimpath \
                -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
            ;;
        metrics-server)
            # The same version key metrics-server's own Makefile sets.
            local version_key=k8s.io/client-go/pkg/version.gitVersion
            go_build_env env GOBIN="$(dirname "$out")" go install -trimpath \
                -ldflags "-s -w -X $version_key=$METRICS_SERVER_VERSION" \
                "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
            ;;
    esac
}

build_binary() {
    local name=$1 dir=$IMAGES_CACHE/$1 version
    version=$(binary_version "$name")
    if [[ -x "$dir/$name" && "$(cat "$dir/.version" 2>/dev/null)" == "$version" ]]; then
        return
    fi
    mkdir -p "$dir"
    timed "go build $name $version" compile "$name" "$dir/$name"
    printf '%s\n' "$version" >"$dir/.version"
}

build_image() {
    local name=$1 force=$2 tag
    tag=$(image_tag "$name")
    build_binary "$name"
    if ! $force && docker image inspect "$tag" >/dev/null 2>&1; then
        say "$tag exists"
        return
    fi
    # The build context is the cache directory: the binary and the Dockerfile only.
    cp "$IMAGES_SRC/$name/Dockerfile" "$IMAGES_CACHE/$name/Dockerfile"
    timed "docker build $tag" quiet_docker_build "$tag" "$IMAGES_CACHE/$name"
}

# docker build, showing its output only when it fails: a successful one prints
# nothing worth reading here (and newer CLIs add a notice about the legacy builder).
quiet_docker_build() {
    local log
    log=$(mktemp)
    if ! docker build --tag "$1" "$2" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "docker build of $1 failed (output above)"
    fi
    rm -f "$log"
}

main() {
    local force=false names=() name
    for name in "$@"; do
        case $name in
            --force) force=true ;;
            pause | coredns | metrics-server) names+=("$name") ;;
            *) die "unknown image '$name'; use --force and/or: ${ALL_IMAGES[*]}" ;;
        esac
    done
    [[ ${#names[@]} -gt 0 ]] || names=("${ALL_IMAGES[@]}")
    command -v go >/dev/null || die "no 'go' on PATH; the images' binaries need Go" \
        "1.24 or newer"
    docker version >/dev/null 2>&1 || die "no Docker engine answers; start one with" \
        "hack/docker-engine.sh start"

    for name in "${names[@]}"; do
        build_image "$name" "$force"
    done
}

main "$@"
