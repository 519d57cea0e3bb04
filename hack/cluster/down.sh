#!/usr/bin/env bash
# Stops the offline cluster that hack/cluster/up.sh started and removes everything it
# set up: pods and their network namespaces, the daemons (by their recorded PIDs),
# mounts, iptables chains, the bridge, cgroups, and the state directories.
#
#   hack/cluster/down.sh          stop and remove; the built binaries and images stay
#
# Safe to run when nothing (or only part) is running. It only touches what is
# recorded or named as the cluster's own: PIDs in $CLUSTER_RUN/pids, processes whose
# command line names the cluster's containerd socket, processes in the cluster's
# cgroup subtree, chains named KUBE-*, CNI-* and $FORWARD_CHAIN, and the bridge.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
CLUSTER_SCRIPT=down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_daemon() {
    local name=$1 pid start=$SECONDS
    if pid=$(running_pid "$name"); then
        stop_pid "$name" "$pid"
        say "stopped $name ($pid) in $((SECONDS - start)) s"
    fi
    rm -f "$PIDS/$name.pid" "$PIDS/$name.exe"
}

remove_pods() {
    # With the kubelet stopped nothing restarts them. Removing the sandboxes through
    # the CRI runs the CNI DEL of each, which frees its address and deletes its veth
    # and network namespace.
    [[ -S "$CONTAINERD_SOCKET" && -x "$CLUSTER_BIN/crictl" ]] || return 0
    running_pid containerd >/dev/null || return 0
    if [[ -n "$(node_crictl pods -q 2>/dev/null)" ]]; then
        node_crictl --timeout 60s rmp --all --force >/dev/null || say "crictl rmp" \
            "failed; the leftovers are killed below"
    fi
}

kill_leftover_processes() {
    # Shims whose containerd is gone keep running; they name its socket in their
    # arguments, which tells them apart from dockerd's.
    local pid
    for pid in $(pgrep -f -- "-address $CONTAINERD_SOCKET" || true); do
        stop_pid "containerd shim" "$pid"
    done
    # Whatever still runs inside the pods' cgroup subtree was started by this cluster.
    { find "/sys/fs/cgroup/pids$CGROUP_ROOT" -name cgroup.procs -exec cat {} + \
        2>/dev/null || true; } | while read -r pid; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}

unmount_below() {
    # Deepest first, so a mount is never hidden under one removed before it.
    local dir=$1 target
    [[ -d "$dir" ]] || return 0
    for target in $(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' \
        /proc/self/mountinfo | sort -r); do
        umount "$target" 2>/dev/null || umount -l "$target" || true
    done
}

remove_iptables_chains() {
    # kube-proxy removes its own rules; the kubelet's canary and firewall chains, the
    # CNI portmap chains and the guard chain go here. Rules in the built-in chains
    # that jump to them are deleted first, then the chains themselves.
    if [[ -x "$CLUSTER_BIN/kube-proxy" ]]; then
        "$CLUSTER_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    fi
    local family table chain rule
    for family in iptables ip6tables; do
        command -v "$family" >/dev/null || continue
        for table in filter nat mangle; do
            local ours
            ours=$({ "$family" -w -t "$table" -S 2>/dev/null || true; } \
                | awk -v g="$FORWARD_CHAIN" \
                    '$1 == "-N" && ($2 ~ /^(KUBE|CNI)-/ || $2 == g) {print $2}')
            [[ -n "$ours" ]] || continue
            for chain in $ours; do
                # A rule of iptables -S output, its -A turned into -D, deletes it.
                "$family" -w -t "$table" -S 2>/dev/null \
                    | { grep -E -- "^-A .*-j $chain( |$)" || true; } \
                    | while read -r rule; do
                        eval "$family -w -t $table ${rule/-A/-D}" 2>/dev/null || true
                    done
            done
            for chain in $ours; do
                "$family" -w -t "$table" -F "$chain" 2>/dev/null || true
            done
            for chain in $ours; do
                "$family" -w -t "$table" -X "$chain" 2>/dev/null || true
            done
        done
    done
}

restore_sysctls() {
    [[ -s "$SYSCTL_BACKUP" ]] || return 0
    local line
    while read -r line; do
        sysctl -qw "$line" || say "could not restore $line"
    done <"$SYSCTL_BACKUP"
}

remove_cgroups() {
    local hierarchy dir
    for hierarchy in /sys/fs/cgroup/*/; do
        [[ -d "$hierarchy${CGROUP_ROOT#/}" ]] || continue
        # rmdir of a cgroup works on empty ones only; deepest first.
        find "$hierarchy${CGROUP_ROOT#/}" -depth -type d | while read -r dir; do
            rmdir "$dir" 2>/dev/null || true
        done
    done
}

in_pod_cidr() {
    python3 -c 'import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1])
sys.exit(0 if any(ipaddress.ip_address(a) in net for a in sys.argv[2:]) else 1)' \
        "$POD_CIDR" "$@"
}

remove_stale_netns() {
    # Normally the CRI removed each pod's namespace above. One left behind by a
    # crashed containerd is recognised by an address from the pod range inside it.
    local path name addresses
    for path in /run/netns/cni-*; do
        [[ -e "$path" ]] || continue
        name=${path##*/}
        addresses=$(ip -n "$name" -4 -o addr show 2>/dev/null \
            | awk '{split($4, a, "/"); print a[1]}')
        # shellcheck disable=SC2086 # one argument per address
        if [[ -z "$addresses" ]] || ! in_pod_cidr $addresses; then
            continue
        fi
        umount "$path" 2>/dev/null || true
        rm -f "$path"
        say "removed stale pod network namespace $name"
    done
}

remove_files() {
    local link
    # The kubelet links every container log into /var/log/containers.
    for link in /var/log/containers/*; do
        if [[ -L "$link" && "$(readlink "$link")" == "$CLUSTER_STATE"/* ]]; then
            rm -f "$link"
        fi
    done
    rm -f /var/lib/cni/results/sales-forecast-* 2>/dev/null || true
    # Directories the kubelet, libcni and containerd make at fixed paths; removed
    # only when empty, so anything another tool keeps there stays.
    rmdir /var/log/containers /var/lib/cni/results /var/lib/cni /run/netns \
        2>/dev/null || true
    unmount_below "$CLUSTER_RUN"
    unmount_below "$CLUSTER_STATE"
    rm -rf "$CLUSTER_RUN" "$CLUSTER_STATE"
}

report_leftovers() {
    local left=()
    ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
    [[ -d "/sys/fs/cgroup/pids$CGROUP_ROOT" ]] && left+=("cgroup $CGROUP_ROOT")
    grep -q " $CLUSTER_STATE" /proc/self/mountinfo \
        && left+=("mounts under $CLUSTER_STATE")
    pgrep -f -- "-address $CONTAINERD_SOCKET" >/dev/null && left+=("containerd shims")
    if [[ ${#left[@]} -gt 0 ]]; then
        die "could not remove: ${left[*]}"
    fi
}

main() {
    need_root
    local start=$SECONDS
    stop_daemon kube-proxy
    stop_daemon kubelet
    remove_pods
    stop_daemon containerd
    kill_leftover_processes
    stop_daemon kube-scheduler
    stop_daemon kube-controller-manager
    stop_daemon kube-apiserver
    stop_daemon etcd
    remove_stale_netns
    remove_iptables_chains
    ip link del "$BRIDGE" 2>/dev/null || true
    remove_cgroups
    restore_sysctls
    remove_files
    report_leftovers
    say "cluster removed in $((SECONDS - start)) s"
}

main "$@"
