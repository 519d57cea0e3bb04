#!/usr/bin/env bash
# Installs what the chart checks (pytest -m chart) need, at pinned versions:
#   - Python packages into the project venv (.venv): tests/chart/requirements.txt
#   - checkov in its own venv (.cache/checkov-venv): it pins many packages that
#     would fight with the project's locks
#   - promtool (Debian package "prometheus") for the alert rules file
#   - the prometheus-operator models (npm) that validate ServiceMonitor and
#     PrometheusRule objects: tests/chart/crd-validate/
#   - helm, kubeconform and skaffold built from the Go module proxy into
#     .cache/bin
# Every step is skipped when its result is already there, so running it again
# costs seconds. Go builds run one at a time under nice, and each prints its
# wall time.
# Usage: hack/install-chart-tools.sh [--no-apt] [STEP...]
#   STEP is one of python checkov promtool crd-models helm kubeconform skaffold;
#   no STEP runs them all. --no-apt fails instead of calling apt-get.
set -euo pipefail

HELM_VERSION=v3.21.4
KUBECONFORM_VERSION=v0.7.0
SKAFFOLD_VERSION=v2.19.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
BIN="$CACHE/bin"
VENV="$ROOT/.venv"
CHECKOV_VENV="$CACHE/checkov-venv"
USE_APT=1
if [[ "${1:-}" == "--no-apt" ]]; then
    USE_APT=0
    shift
fi

mkdir -p "$BIN"

say() { printf '[install-chart-tools] %s\n' "$*"; }

# A tool counts as installed when its binary exists and the stamp beside it
# names the pinned version (go-installed binaries do not all report one).
installed() {
    local name=$1 version=$2
    [[ -x "$BIN/$name" && "$(cat "$BIN/.$name.version" 2>/dev/null)" == "$version" ]]
}

stamp() { echo "$2" > "$BIN/.$1.version"; }

timed() {
    local label=$1; shift
    local start=$SECONDS
    "$@"
    say "$label took $((SECONDS - start)) s"
}

apt_install() {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

go_env() {
    # CGO off gives static binaries; -p=2 matches the machine's two cores.
    env CGO_ENABLED=0 GOFLAGS="-p=2 -buildvcs=false" GOBIN="$BIN" "$@"
}

install_python_packages() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "no project venv at $VENV; run 'make venv' first"
        exit 1
    fi
    # pip is itself the idempotency check: with every pin satisfied it only
    # reads metadata (a few seconds) and changes nothing.
    timed "pip install tests/chart/requirements.txt" \
        "$VENV/bin/python" -m pip install -q \
        -r "$ROOT/tests/chart/requirements.txt"
}

install_checkov() {
    local pinned
    pinned=$(sed -n 's/^checkov==//p' "$ROOT/tests/chart/checkov-requirements.txt")
    if [[ -x "$CHECKOV_VENV/bin/checkov" ]] \
        && [[ "$("$CHECKOV_VENV/bin/checkov" --version)" == "$pinned" ]]; then
        say "checkov already in $CHECKOV_VENV"
        return
    fi
    python3 -m venv "$CHECKOV_VENV"
    timed "pip install checkov" "$CHECKOV_VENV/bin/python" -m pip install -q \
        -r "$ROOT/tests/chart/checkov-requirements.txt"
}

install_promtool() {
    if command -v promtool >/dev/null; then
        say "promtool already installed: $(promtool --version 2>&1 | sed -n 1p)"
        return
    fi
    if [[ $USE_APT == 0 ]]; then
        say "promtool missing and --no-apt given; install the Debian package prometheus"
        exit 1
    fi
    # The package also ships a Prometheus server; Debian would start it only
    # under systemd, which these machines do not run.
    timed "apt-get install prometheus" apt_install prometheus
}

install_crd_models() {
    local dir="$ROOT/tests/chart/crd-validate"
    if [[ -d "$dir/node_modules/@kubernetes-models/prometheus-operator" ]]; then
        say "prometheus-operator models already in $dir/node_modules"
        return
    fi
    if ! command -v npm >/dev/null; then
        if [[ $USE_APT == 0 ]]; then
            say "npm missing and --no-apt given; install the Debian package npm"
            exit 1
        fi
        timed "apt-get install npm" apt_install npm
    fi
    timed "npm ci (crd-validate)" npm ci --prefix "$dir" --no-audit --no-fund --silent
}

install_helm() {
    if installed helm "$HELM_VERSION"; then
        say "helm $HELM_VERSION already in $BIN"
        return
    fi
    # The -X flags are the ones helm's own release build sets: without them
    # 'helm version' is empty and 'helm template'/'helm lint' assume
    # Kubernetes 1.20, which fails the chart's kubeVersion. 1.36 matches the
    # client-go (v0.36) that helm $HELM_VERSION is built with.
    local h=helm.sh/helm/v3
    local ld="-s -w -X $h/internal/version.version=$HELM_VERSION"
    local pkg
    for pkg in chartutil lint/rules; do
        ld="$ld -X $h/pkg/$pkg.k8sVersionMajor=1 -X $h/pkg/$pkg.k8sVersionMinor=36"
    done
    timed "go install helm $HELM_VERSION" go_env nice -n 10 go install -trimpath \
        -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    stamp helm "$HELM_VERSION"
}

install_kubeconform() {
    if installed kubeconform "$KUBECONFORM_VERSION"; then
        say "kubeconform $KUBECONFORM_VERSION already in $BIN"
        return
    fi
    timed "go install kubeconform $KUBECONFORM_VERSION" go_env nice -n 10 \
        go install -trimpath -ldflags "-s -w" \
        "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    stamp kubeconform "$KUBECONFORM_VERSION"
}

install_skaffold() {
    if installed skaffold "$SKAFFOLD_VERSION"; then
        say "skaffold $SKAFFOLD_VERSION already in $BIN"
        return
    fi
    # skaffold's go.mod has replace directives, which 'go install pkg@version'
    # refuses; they are honoured when skaffold is the main module, so build
    # inside a writable copy of the downloaded module.
    local module=github.com/GoogleContainerTools/skaffold/v2
    local moddir src="$CACHE/src/skaffold-$SKAFFOLD_VERSION"
    moddir=$(go mod download -json "$module@$SKAFFOLD_VERSION" \
        | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    if [[ -z "$moddir" || ! -d "$moddir" ]]; then
        say "go mod download gave no directory for $module@$SKAFFOLD_VERSION"
        exit 1
    fi
    rm -rf "$src"
    mkdir -p "$(dirname "$src")"
    cp -r "$moddir" "$src"
    chmod -R u+w "$src"
    # fs/assets embeds the config schemas that 'skaffold schema' prints; the
    # release build copies them there the same way.
    cp -r "$src/docs-v2/content/en/schemas" "$src/fs/assets/schemas_generated"
    local ver=github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version
    (cd "$src" && timed "go build skaffold $SKAFFOLD_VERSION" go_env nice -n 10 \
        go build -trimpath -tags "osusergo netgo release" \
        -ldflags "-s -w -X $ver.version=$SKAFFOLD_VERSION" \
        -o "$BIN/skaffold" ./cmd/skaffold)
    stamp skaffold "$SKAFFOLD_VERSION"
    # The copy is 100+ MB and only needed to build.
    rm -rf "$src"
}

main() {
    local steps=("$@") step
    if [[ ${#steps[@]} == 0 ]]; then
        steps=(python checkov promtool crd-models helm kubeconform skaffold)
    fi
    for step in "${steps[@]}"; do
        case $step in
            python) install_python_packages ;;
            checkov) install_checkov ;;
            promtool) install_promtool ;;
            crd-models) install_crd_models ;;
            helm) install_helm ;;
            kubeconform) install_kubeconform ;;
            skaffold) install_skaffold ;;
            *)
                say "unknown step '$step'; use python, checkov, promtool," \
                    "crd-models, helm, kubeconform or skaffold"
                exit 2
                ;;
        esac
    done
    say "tools in $BIN: $(ls "$BIN" | tr '\n' ' ')"
}

main "$@"
