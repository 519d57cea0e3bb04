#!/usr/bin/env bash
# Runs the end-to-end suite (tests/e2e) against a cluster: builds what it installs
# (the app image from the working tree, the real helm CLI), then pytest -m e2e.
#
#   hack/cluster/e2e.sh [PYTEST ARGS...]
#
# With no KUBECONFIG set it tests the offline cluster of `make cluster-up`, loading
# images with hack/cluster/load-image.sh. For kind (docs/cluster.md):
#   KUBECONFIG=~/.kube/config E2E_IMAGE_LOADER="kind load docker-image" make e2e
#
# Environment (all optional): E2E_IMAGE (sales-forecast:e2e), E2E_SKIP_BUILD=1 uses
# E2E_IMAGE as it is, HELM, KUBECTL, E2E_NAMESPACE, E2E_KEEP=1 (tests/e2e/e2elib.py),
# E2E_SKAFFOLD (tests/e2e/test_skaffold_dev_loop.py).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=e2e
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$CLUSTER_TOP"
export E2E_IMAGE=${E2E_IMAGE:-sales-forecast:e2e}
if [[ -z "${KUBECONFIG:-}" ]]; then
    [[ -s "$CLUSTER_KUBECONFIG" ]] || die "no KUBECONFIG set and no offline cluster" \
        "at $CLUSTER_KUBECONFIG; start one with 'make cluster-up' or point" \
        "KUBECONFIG at a cluster (and E2E_IMAGE_LOADER at its image loader)"
    export KUBECONFIG=$CLUSTER_KUBECONFIG
    export E2E_IMAGE_LOADER=${E2E_IMAGE_LOADER:-$CLUSTER_TOP/hack/cluster/load-image.sh}
    # Run from a copy of the tree (tests/e2e/test_skaffold_dev_loop.py).
    export E2E_SKAFFOLD=${E2E_SKAFFOLD:-hack/cluster/skaffold.sh}
    # Each run leaves its model claims' volumes released (they are kept, Retain);
    # up.sh on a running cluster wipes and offers them again, so runs can repeat.
    if [[ -S "$CONTAINERD_SOCKET" ]]; then
        "$CLUSTER_TOP/hack/cluster/up.sh"
    fi
fi
if [[ -z "${KUBECTL:-}" && -x "$CLUSTER_BIN/kubectl" ]]; then
    export KUBECTL=$CLUSTER_BIN/kubectl
fi

# The real helm CLI, built once from the Go module proxy by the chart tools script.
if [[ -z "${HELM:-}" ]]; then
    "$CLUSTER_TOP/hack/install-chart-tools.sh" helm
    export HELM=$CLUSTER_TOP/.cache/bin/helm
fi

if [[ "${E2E_SKIP_BUILD:-}" != 1 ]]; then
    "$CLUSTER_TOP/hack/docker-engine.sh" start
    # Offline machines build on the local Debian base; elsewhere BASE_IMAGE may name
    # another (or be empty for the Dockerfile's default).
    if [[ -z "${BASE_IMAGE+set}" ]]; then
        "$CLUSTER_TOP/hack/base-image.sh"
        export BASE_IMAGE=sales-forecast-base:bookworm
    fi
    timed "app image $E2E_IMAGE" "$CLUSTER_TOP/hack/build-image.sh" "$E2E_IMAGE"
fi

start=$SECONDS
status=0
"$CLUSTER_TOP/.venv/bin/python" -m pytest -m e2e tests/e2e -x \
    -o console_output_style=classic "$@" || status=$?
say "suite took $((SECONDS - start)) s (exit $status)"
exit $status
