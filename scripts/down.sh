#!/bin/sh
# Stops the cluster that scripts/up.sh started and removes what its node agent left on
# this machine: running containers (their shims), mounts, the pod bridge, network
# namespaces, the pod network's iptables rules and the service proxy's nftables table. Cluster state (the SQLite store,
# PKI, kubeconfig) stays in $KYB_DATA_DIR unless --purge is given.
set -u
DATA_DIR="${KYB_DATA_DIR:-/var/lib/kybernetes}"
BRIDGE="${KYB_CNI_BRIDGE:-kyb0}"
if [ -f "$DATA_DIR/server.pid" ]; then
    pid="$(cat "$DATA_DIR/server.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.5; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$DATA_DIR/server.pid"
fi
# Shims of this cluster's containers name its containerd socket; ending a shim's
# process group ends the containers it runs.
for p in $(pgrep -f "containerd-shim.*$DATA_DIR/agent" 2>/dev/null); do
    for c in $(pgrep -P "$p" 2>/dev/null); do kill -9 "$c" 2>/dev/null; done
    kill -9 "$p" 2>/dev/null
done
pkill -f "containerd --config $DATA_DIR/agent/" 2>/dev/null
# Mounts (rootfs, shm, netns) under the agent's dir, deepest first.
awk -v d="$DATA_DIR/agent/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
done
ip link del "$BRIDGE" 2>/dev/null
if command -v iptables-save >/dev/null 2>&1; then
    # The pod network's rules of this cluster's pods: host-local's lease files name their
    # containers (other clusters' pods on this host keep theirs).
    ids="$(cat "$DATA_DIR"/agent/cni-ipam/*/[0-9]* 2>/dev/null | grep -E '^[0-9a-f]{64}' | tr -d '\r')"
    [ -n "$ids" ] && python3 "$(dirname "$0")/cni-cleanup.py" $ids
    for table in nat filter; do
        # The service proxy's rules in iptables mode (KYB-*).
        iptables-save -t "$table" | grep -q -e 'KYB-' && \
            iptables-save -t "$table" | grep -v -e 'KYB-' | iptables-restore -T "$table" 2>/dev/null
    done
fi
# The service proxy's rules: one nftables table.
if command -v nft >/dev/null 2>&1; then
    nft delete table ip "${KYB_PROXY_TABLE:-kybernetes}" 2>/dev/null
    # The pod network's one masquerade rule (agent/egress.py), named after the bridge.
    nft delete table ip "kyb-egress-${KYB_CNI_BRIDGE:-kyb0}" 2>/dev/null || true
fi
# The pod network across nodes (agent/overlay.py): its VXLAN device (with its neighbour and FDB
# entries) and the routes it added, which carry routing protocol 75.
ip link del kyb.vxlan 2>/dev/null || true
ip route flush proto 75 2>/dev/null || true
rm -rf "$DATA_DIR/agent/cni-ipam"
if [ "${1:-}" = "--purge" ]; then
    rm -rf "$DATA_DIR"
fi
echo "kybernetes stopped" >&2
