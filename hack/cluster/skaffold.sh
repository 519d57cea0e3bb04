#!/usr/bin/env bash
# skaffold against the offline cluster of `make cluster-up`, with the same
# skaffold.yaml as on kind and its `offline-cluster` profile: the image is built on the
# local Debian base and copied into the node after each build (kind's `kind load`,
# done by a build hook).
#
#   hack/cluster/skaffold.sh dev|run|build|deploy|delete|verify [SKAFFOLD ARGS...]
#   e.g. hack/cluster/skaffold.sh verify --build-artifacts FILE  (FILE as written by
#   `skaffold build --file-output`, naming the image the release runs)
#
# `make cluster-dev` and `make cluster-deploy` call it. It sets up what skaffold needs
# on PATH: the pinned skaffold and helm (hack/install-chart-tools.sh), the cluster's
# kubectl (file sync and port forwarding run it), and a Docker CLI that can build with
# BuildKit. Builds always run (--cache-artifacts=false): skaffold runs build hooks
# only for an image it builds, so an image found in its cache would never reach a
# fresh node. With KUBECONFIG unset it uses the offline cluster's.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=skaffold.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: hack/cluster/skaffold.sh dev|run|build|deploy|delete|verify [ARGS...]"
[[ $# -gt 0 ]] || die "no skaffold command given; $usage"
command=$1
shift
# The commands that take skaffold's --config (set below), and verify, which reads
# the global config from HOME only; any other would read the user's own.
case $command in
    dev | run | build | deploy | delete | verify) ;;
    *) die "'$command' is not one of the commands this script runs; $usage" ;;
esac

own_cluster=
if [[ -z "${KUBECONFIG:-}" ]]; then
    [[ -s "$CLUSTER_KUBECONFIG" ]] || die "no offline cluster at" \
        "$CLUSTER_KUBECONFIG; start one with 'make cluster-up'"
    export KUBECONFIG=$CLUSTER_KUBECONFIG
    own_cluster=1
fi
# A KUBECONFIG left exported after 'make cluster-down' names no file: skaffold would
# build first and helm would then try http://localhost:8080.
kubeconfig_found=
IFS=: read -r -a kubeconfigs <<< "$KUBECONFIG"
for file in "${kubeconfigs[@]}"; do
    [[ -s "$file" ]] && kubeconfig_found=1
done
[[ -n "$kubeconfig_found" ]] || die "KUBECONFIG=$KUBECONFIG names no file; start" \
    "the offline cluster with 'make cluster-up', or unset KUBECONFIG"
# Every build is copied into the node's containerd by the build hook.
case $command in
    dev | run | build)
        [[ -S "$CONTAINERD_SOCKET" ]] || die "the offline cluster is not running" \
            "(no $CONTAINERD_SOCKET); start it with 'make cluster-up'" ;;
esac
[[ -x "$CLUSTER_BIN/kubectl" ]] || die "no kubectl at $CLUSTER_BIN/kubectl; build" \
    "the cluster's tools first (make cluster-up)"
# A release deleted with its namespace leaves its model volume released (kept:
# Retain), and the cluster has a few; up.sh on a running cluster wipes those and
# offers them again, so one session after another finds a volume to claim.
case $own_cluster:$command in
    1:dev | 1:run | 1:deploy)
        [[ ! -S "$CONTAINERD_SOCKET" ]] || "$CLUSTER_TOP/hack/cluster/up.sh" >&2 ;;
esac

"$CLUSTER_TOP/hack/install-chart-tools.sh" helm skaffold >&2
"$CLUSTER_TOP/hack/docker-engine.sh" start >&2

# skaffold runs `docker build` with DOCKER_BUILDKIT=1 from PATH; the first docker on
# PATH may be a newer CLI without the buildx plugin, which then refuses.
# shellcheck source=../lib/docker.sh
source "$CLUSTER_TOP/hack/lib/docker.sh"
cli=$(command -v "$(buildkit_cli)")
shim=$CLUSTER_CACHE/docker-cli
mkdir -p "$shim"
ln -sfn "$cli" "$shim/docker"

# The build hooks run hack/ scripts from the working directory; CLUSTER_CACHE lets
# them find the cluster's tools from a copy of the repository too.
export CLUSTER_CACHE
export PATH="$shim:$CLUSTER_TOP/.cache/bin:$CLUSTER_BIN:$PATH"
export DOCKER_BUILDKIT=1
# A global config of its own: skaffold's default one may ask to send usage data or
# check for updates, and this cluster never reaches beyond the machine.
skaffold_config=$CLUSTER_CACHE/skaffold-global.yaml
cat > "$skaffold_config" <<'YAML'
global:
  collect-metrics: false
  update-check: false
  survey:
    disable-prompt: true
YAML
export SKAFFOLD_CONFIG=$skaffold_config SKAFFOLD_INTERACTIVE=false \
    SKAFFOLD_UPDATE_CHECK=false
if [[ $command == verify ]]; then
    export HOME=$CLUSTER_CACHE/skaffold-home
    mkdir -p "$HOME/.skaffold"
    cp "$skaffold_config" "$HOME/.skaffold/config"
fi
cd "$CLUSTER_TOP"

extra=()
case $command in
    dev | run | build) extra=(--cache-artifacts=false) ;;
esac
exec skaffold "$command" --profile offline-cluster "${extra[@]}" "$@"
