#!/usr/bin/env bash
# Installs the Debian packages the offline single-node cluster runs on: the container
# runtime (containerd, runc), the CNI plugins (bridge, host-local, portmap, loopback),
# and the tools kube-proxy and the scripts call (iptables, conntrack, iproute2,
# openssl for the certificates, python3-venv for the etcd wheel).
#
#   hack/cluster/install-deps.sh     apt-get install whatever is missing; else nothing
#
# Debian's containerd is only used as a program: the cluster starts its own instance
# with its own root, state and socket (hack/cluster/up.sh), so an engine already on the
# machine (dockerd and the containerd it runs) is never touched.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=install-deps
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# package -> a file it installs, to tell whether it is there without asking dpkg about
# every name (a file can also come from a non-Debian install, which is fine too).
declare -A PROBES=(
    [containerd]=/usr/bin/containerd
    [runc]=/usr/sbin/runc
    [containernetworking-plugins]=/usr/lib/cni/bridge
    [conntrack]=/usr/sbin/conntrack
    [iptables]=/usr/sbin/iptables
    [iproute2]=/usr/sbin/ip
    [openssl]=/usr/bin/openssl
    [python3-venv]=/usr/lib/python3.11/ensurepip/__init__.py
    [ethtool]=/usr/sbin/ethtool
)

missing=()
for package in "${!PROBES[@]}"; do
    [[ -e "${PROBES[$package]}" ]] || missing+=("$package")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    say "all packages present: ${!PROBES[*]}"
    exit 0
fi

need_root
export DEBIAN_FRONTEND=noninteractive
say "installing ${missing[*]}"
# The lock timeout lets this wait for another apt-get on the same machine instead of
# failing at once.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
if ! apt_get install -y --no-install-recommends "${missing[@]}"; then
    say "apt-get install failed; refreshing the package lists once and retrying"
    apt_get update
    apt_get install -y --no-install-recommends "${missing[@]}"
fi
