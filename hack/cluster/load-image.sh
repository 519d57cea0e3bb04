#!/usr/bin/env bash
# Copies images from the local Docker engine into the offline cluster's containerd,
# the way `kind load docker-image` does for kind: `docker save | ctr images import`.
#
#   hack/cluster/load-image.sh IMAGE...      e.g. ... load-image.sh sales-forecast:dev
#   hack/cluster/load-image.sh --skaffold    as a skaffold build hook (skaffold.yaml)
#
# A local skaffold build deploys its image under the tag REPOSITORY:<image ID>, not
# the tag it built (SKAFFOLD_IMAGE); --skaffold loads the image under that tag.
#
# An image whose ID the node already has under that name is skipped. Pods then use it
# with imagePullPolicy IfNotPresent (or Never); nothing is pulled from a registry.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=load-image
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -gt 0 ]] || die "no image given; usage: hack/cluster/load-image.sh IMAGE..." \
    "or --skaffold"
if [[ "$1" == --skaffold ]]; then
    [[ -n "${SKAFFOLD_IMAGE:-}" ]] || die "--skaffold: SKAFFOLD_IMAGE is not set; this" \
        "runs as a skaffold build hook"
    built_id=$(docker image inspect --format '{{.Id}}' "$SKAFFOLD_IMAGE") \
        || die "--skaffold: Docker has no image '$SKAFFOLD_IMAGE'"
    set -- "${SKAFFOLD_IMAGE%:*}:${built_id#sha256:}"
fi
[[ -S "$CONTAINERD_SOCKET" ]] || die "the cluster's containerd socket" \
    "$CONTAINERD_SOCKET is missing; start the cluster first (make cluster-up)"
# Without crictl every lookup below would read as "not on the node".
[[ -x "$CLUSTER_BIN/crictl" ]] || die "no crictl at $CLUSTER_BIN/crictl; build the" \
    "cluster's tools first (make cluster-up), or point CLUSTER_CACHE at the folder" \
    "that holds them"

ctr_k8s() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }

# The image ID Docker shows is the digest of the image's config; the CRI reports the
# same digest as the image's id, so equal IDs mean the node has these exact bits.
node_image_id() {
    node_crictl inspecti -o go-template --template '{{.status.id}}' "$1" 2>/dev/null || true
}

for image in "$@"; do
    docker_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) \
        || die "Docker has no image '$image'; build it first (e.g." \
            "hack/build-image.sh $image) or check the name with 'docker images'"
    if [[ "$(node_image_id "$image")" == "$docker_id" ]]; then
        say "$image ($docker_id) is already on the node"
        continue
    fi
    start=$SECONDS
    docker save "$image" | ctr_k8s images import - >/dev/null
    [[ "$(node_image_id "$image")" == "$docker_id" ]] || die "after the import the" \
        "node still has no '$image' with ID $docker_id; see 'ctr -n k8s.io images ls'"
    say "loaded $image ($docker_id) in $((SECONDS - start)) s"
done
