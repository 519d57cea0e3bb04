#!/usr/bin/env bash
# Starts the offline single-node Kubernetes cluster: etcd, the control plane, Debian's
# containerd with its own root and socket, a kubelet, kube-proxy (iptables mode), and
# the add-ons (CoreDNS, metrics-server, a default StorageClass with local volumes).
#
#   hack/cluster/up.sh     start whatever is not running yet; prints the KUBECONFIG
#
# Needs root, the binaries of hack/cluster/build.sh and the images of
# hack/images/build.sh (`make cluster-up` runs all three). Every daemon is started
# detached with its PID in $CLUSTER_RUN/pids and its log in $CLUSTER_STATE/logs;
# hack/cluster/down.sh stops them by those PIDs and removes what was set up here.
#
# Network: the node is the bridge $BRIDGE ($NODE_IP), which the scripts create. The
# API server, the kubelet and every pod listen only on it or on loopback; a guard chain
# in iptables keeps pod traffic on the bridge, so no pod can reach past the node.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=up
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"

LOGS=$CLUSTER_STATE/logs
MANIFESTS=$CLUSTER_TOP/hack/cluster/manifests
CNI_CONF_DIR=$CLUSTER_STATE/cni/net.d
VOLUMES_DIR=$CLUSTER_STATE/volumes
VOLUME_COUNT=${CLUSTER_VOLUME_COUNT:-6}

kubectl_admin() { "$CLUSTER_BIN/kubectl" --kubeconfig "$CLUSTER_KUBECONFIG" "$@"; }

# wait_for LABEL SECONDS COMMAND...: polls once a second until COMMAND succeeds.
wait_for() {
    local label=$1 limit=$2 waited=0
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [[ $waited -ge $limit ]]; then
            say "$label: not ready after ${limit}s"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "$label ready after ${waited}s"
}

preflight() {
    need_root
    local name missing=()
    for name in kube-apiserver kube-controller-manager kube-scheduler kubelet \
        kube-proxy kubectl etcd crictl; do
        [[ -x "$CLUSTER_BIN/$name" ]] || missing+=("$name")
    done
    [[ ${#missing[@]} -eq 0 ]] || die "missing in $CLUSTER_BIN: ${missing[*]};" \
        "build them with hack/cluster/build.sh"
    for name in containerd runc conntrack iptables /usr/lib/cni/bridge; do
        command -v "$name" >/dev/null || die "missing '$name'; install it with" \
            "hack/cluster/install-deps.sh"
    done
    local image
    for image in "$PAUSE_IMAGE" "$COREDNS_IMAGE" "$METRICS_SERVER_IMAGE"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "Docker has no image" \
            "$image; build the system images with hack/images/build.sh"
    done
    mkdir -p "$LOGS" "$PIDS" "$CNI_CONF_DIR" "$VOLUMES_DIR" "$CLUSTER_RUN/containerd"
}

# start_daemon NAME BINARY ARGS...: starts BINARY detached unless NAME already runs.
start_daemon() {
    local name=$1 binary=$2
    shift 2
    if running_pid "$name" >/dev/null; then
        say "$name already runs (pid $(running_pid "$name"))"
        return
    fi
    # setsid: the daemon outlives this script and its terminal.
    setsid "$binary" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
    local pid=$!
    printf '%s\n' "$pid" >"$PIDS/$name.pid"
    readlink -f "$binary" >"$PIDS/$name.exe"
    sleep 0.5
    kill -0 "$pid" 2>/dev/null || {
        tail -n 20 "$LOGS/$name.log" >&2
        die "$name exited at once; its log is $LOGS/$name.log (last lines above)"
    }
    say "started $name (pid $pid, log $LOGS/$name.log)"
}

setup_network() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Service addresses exist only as kube-proxy's DNAT rules. Routing the range onto
    # the bridge means a packet that no rule rewrote (kube-proxy not synced yet, or
    # stopped) dies on the bridge instead of following the default route off the node.
    ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"

    sysctl -qw net.ipv4.ip_forward=1
    sysctl -qw net.bridge.bridge-nf-call-iptables=1

    # The guard chain: traffic between pods, and between pods and the node, stays;
    # anything a pod sends past the bridge is dropped. It sits first in FORWARD so it
    # also overrides a DROP policy another engine (dockerd) set for its own bridges.
    iptables -w -N "$FORWARD_CHAIN" 2>/dev/null || iptables -w -F "$FORWARD_CHAIN"
    iptables -w -A "$FORWARD_CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
    iptables -w -A "$FORWARD_CHAIN" -i "$BRIDGE" -j DROP
    iptables -w -A "$FORWARD_CHAIN" -o "$BRIDGE" -j DROP
    iptables -w -C FORWARD -j "$FORWARD_CHAIN" 2>/dev/null \
        || iptables -w -I FORWARD 1 -j "$FORWARD_CHAIN"
}

start_etcd() {
    # --unsafe-no-fsync: a throwaway test store on a shared disk; fsync per write
    # would make every API call wait on the disk for no durability anyone needs here.
    start_daemon etcd "$CLUSTER_BIN/etcd" --name sales-forecast \
        --data-dir "$CLUSTER_STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "sales-forecast=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_for etcd 30 "$CLUSTER_BIN/etcdctl" --endpoints "127.0.0.1:$ETCD_CLIENT_PORT" \
        endpoint health
}

start_control_plane() {
    start_daemon kube-apiserver "$CLUSTER_BIN/kube-apiserver" \
        --bind-address "$NODE_IP" --advertise-address "$NODE_IP" \
        --secure-port "$APISERVER_PORT" \
        --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --client-ca-file "$PKI/ca.crt" \
        --tls-cert-file "$PKI/apiserver.crt" \
        --tls-private-key-file "$PKI/apiserver.key" \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority "$PKI/ca.crt" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --service-account-key-file "$PKI/sa.pub" \
        --service-account-signing-key-file "$PKI/sa.key" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --allow-privileged=true \
        --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
        --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User \
        --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
        --proxy-client-key-file "$PKI/front-proxy-client.key" \
        --enable-aggregator-routing=true --profiling=false
    wait_for kube-apiserver 120 kubectl_admin get --raw /readyz

    start_daemon kube-controller-manager "$CLUSTER_BIN/kube-controller-manager" \
        --kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false \
        --cluster-signing-cert-file "$PKI/ca.crt" \
        --cluster-signing-key-file "$PKI/ca.key" \
        --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
        --use-service-account-credentials=true --profiling=false
    start_daemon kube-scheduler "$CLUSTER_BIN/kube-scheduler" \
        --kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

write_containerd_config() {
    local dir=$CLUSTER_STATE/containerd
    mkdir -p "$dir/certs.d/_default"
    # Any pull of an image the node lacks is sent to a closed loopback port, for every
    # registry: the cluster must never reach a registry (or a DNS server) off the node.
    cat >"$dir/certs.d/_default/hosts.toml" <<EOF
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
    cat >"$dir/config.toml" <<EOF
# containerd of the offline cluster, apart from any other containerd on the machine:
# its own root, state, socket and plugin paths.
version = 2
root = "$dir/root"
state = "$CLUSTER_RUN/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.tracing",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCKET"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower
  # its oom_score_adj below 0; the kubelet asks for -998 for sandboxes and runc would
  # fail. Clamping to containerd's own score keeps the rest of the kubelet's order.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CLUSTER_RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
}

write_cni_config() {
    # The bridge plugin attaches each pod to $BRIDGE; host-local hands out addresses
    # from the pod range and keeps its records under $CLUSTER_RUN. No masquerading:
    # pods talk only to each other and to the node.
    cat >"$CNI_CONF_DIR/10-sales-forecast.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "sales-forecast",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$CLUSTER_RUN/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

start_containerd() {
    write_containerd_config
    write_cni_config
    start_daemon containerd "$(command -v containerd)" \
        --config "$CLUSTER_STATE/containerd/config.toml"
    wait_for containerd 30 node_crictl info
    "$CLUSTER_TOP/hack/cluster/load-image.sh" "$PAUSE_IMAGE" "$COREDNS_IMAGE" \
        "$METRICS_SERVER_IMAGE"
}

make_cgroup_root() {
    # The kubelet refuses a cgroupRoot that does not exist in every hierarchy.
    local hierarchy
    for hierarchy in /sys/fs/cgroup/*/; do
        [[ "$(stat -fc %T "$hierarchy")" == cgroupfs ]] || continue
        mkdir -p "$hierarchy${CGROUP_ROOT#/}"
    done
}

write_kubelet_config() {
    # The pods' resolv.conf is built from this file for dnsPolicy Default; it names
    # no server on purpose, so no pod learns the machine's own resolver.
    printf '# no upstream resolver: the offline cluster resolves cluster names only\n' \
        >"$CLUSTER_STATE/resolv.conf"
    cat >"$CLUSTER_STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
# No systemd here, and Debian's containerd 1.6 cannot report its cgroup driver.
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
# The host has cgroup v1 only; 1.34 accepts it, this states the choice.
failCgroupV1: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $CLUSTER_STATE/resolv.conf
podLogsDir: $CLUSTER_STATE/pod-logs
failSwapOn: false
maxPods: 40
# The disk is shared with other work: evict only when it is really about to fill,
# and never delete images for space (they cannot be pulled back here).
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2Gi
  imagefs.available: 2Gi
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
}

save_sysctls() {
    # Only once: a second start must not take the kubelet's values for the originals.
    [[ -s "$SYSCTL_BACKUP" ]] && return
    local key
    for key in "${KUBELET_SYSCTLS[@]}"; do
        printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
    done >"$SYSCTL_BACKUP"
}

kube_proxy_config() {
    cat <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
# The kernel has no IPVS; iptables mode works on its nftables backend.
mode: iptables
clientConnection:
  kubeconfig: $CLUSTER_STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the bridge address, never on the machine's other interfaces.
nodePortAddresses: [$NODE_IP/32]
iptables:
  localhostNodePorts: false
# 0 leaves the host's conntrack settings as they are.
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

start_node() {
    make_cgroup_root
    save_sysctls
    write_kubelet_config
    start_daemon kubelet "$CLUSTER_BIN/kubelet" \
        --config "$CLUSTER_STATE/kubelet-config.yaml" \
        --kubeconfig "$CLUSTER_STATE/kubelet.kubeconfig" \
        --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
        --root-dir "$CLUSTER_STATE/kubelet" --cert-dir "$CLUSTER_STATE/kubelet/pki"
    wait_for "node $NODE_NAME" 120 kubectl_admin wait --for=condition=Ready \
        "node/$NODE_NAME" --timeout=1s

    # kube-proxy exits as soon as its configuration file is written to, even with
    # the same content: the file of a running one is left alone, and one whose
    # configuration changed is stopped before the file is, and started below.
    local config=$CLUSTER_STATE/kube-proxy-config.yaml pid
    if ! kube_proxy_config | cmp -s - "$config"; then
        if pid=$(running_pid kube-proxy); then
            stop_pid kube-proxy "$pid"
            say "stopped kube-proxy ($pid): its configuration changed"
        fi
        kube_proxy_config >"$config"
    fi
    start_daemon kube-proxy "$CLUSTER_BIN/kube-proxy" --config "$config"
    wait_for kube-proxy 60 curl -fsS http://127.0.0.1:10256/healthz
}

render() {
    sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
        -e "s|@METRICS_SERVER_IMAGE@|$METRICS_SERVER_IMAGE|g" \
        -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" \
        -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" "$1"
}

pv_manifest() {
    local index=$1
    cat <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv-$index
  labels:
    sales-forecast.local/volume: "true"
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  local:
    path: $VOLUMES_DIR/pv-$index
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
---
EOF
}

ensure_volumes() {
    # Released volumes (their claim was deleted) are wiped and offered again, as a
    # provisioner with reclaimPolicy Delete would do.
    local released name index
    released=$(kubectl_admin get pv -l sales-forecast.local/volume=true \
        -o 'jsonpath={.items[?(@.status.phase=="Released")].metadata.name}')
    for name in $released; do
        kubectl_admin delete pv "$name" --wait=true >/dev/null
        rm -rf "${VOLUMES_DIR:?}/pv-${name#local-pv-}"
        say "wiped released volume $name"
    done
    for index in $(seq 1 "$VOLUME_COUNT"); do
        mkdir -p "$VOLUMES_DIR/pv-$index"
        pv_manifest "$index"
    done | kubectl_admin apply -f - >/dev/null
}

start_addons() {
    render "$MANIFESTS/storage.yaml" | kubectl_admin apply -f - >/dev/null
    ensure_volumes
    render "$MANIFESTS/coredns.yaml" | kubectl_admin apply -f - >/dev/null
    render "$MANIFESTS/metrics-server.yaml" | kubectl_admin apply -f - >/dev/null
    kubectl_admin -n kube-system rollout status deployment/coredns --timeout=180s
    kubectl_admin -n kube-system rollout status deployment/metrics-server --timeout=180s
    wait_for "metrics API" 120 kubectl_admin get --raw \
        "/apis/metrics.k8s.io/v1beta1/nodes/$NODE_NAME"
}

clear_stale_state() {
    # State with none of its daemons running is what a reboot, or a machine whose
    # processes were all ended, leaves behind: start from scratch rather than revive
    # half of it (old pods, old addresses, old iptables rules).
    [[ -d "$CLUSTER_STATE" ]] || return 0
    local name
    for name in etcd kube-apiserver containerd kubelet; do
        running_pid "$name" >/dev/null && return 0
    done
    say "found $CLUSTER_STATE with no daemon running; removing it first"
    "$CLUSTER_TOP/hack/cluster/down.sh"
}

main() {
    local start=$SECONDS
    need_root
    clear_stale_state
    preflight
    setup_network
    make_pki
    start_etcd
    start_control_plane
    start_containerd
    start_node
    start_addons
    say "cluster up in $((SECONDS - start)) s: $("$CLUSTER_BIN/kubectl" version \
        --kubeconfig "$CLUSTER_KUBECONFIG" -o json | sed -n \
        's/.*"gitVersion": "\(v[^"]*\)".*/server \1/p' | tail -n 1)"
    say "use it with: export KUBECONFIG=$CLUSTER_KUBECONFIG"
}

# Sourcing the file (without running it) gives the functions alone, for trying a
# single step by hand.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
