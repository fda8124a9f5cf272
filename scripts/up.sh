#!/bin/sh
# Brings up a kybernetes cluster on this machine: installs what is needed, starts
# `kyb server` in the background and waits until it is ready. The admin
# kubeconfig is written to $KYB_DATA_DIR/kubeconfig.yaml.
# A second cluster beside another one on this host needs its own networks and node
# resources: KYB_CLUSTER_CIDR and KYB_SERVICE_CIDR (the server's --cluster-cidr and
# --service-cidr), and KYB_CNI_BRIDGE, KYB_PROXY_TABLE, KYB_AGENT_PORT, KYB_DNS_PORT, which
# its node agent reads (scripts/down.sh takes the same variables).
set -eu
cd "$(dirname "$0")/.."
./scripts/install.sh
DATA_DIR="${KYB_DATA_DIR:-/var/lib/kybernetes}"
PORT="${KYB_PORT:-6443}"
mkdir -p "$DATA_DIR"
if [ -f "$DATA_DIR/server.pid" ] && kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null; then
    echo "kyb server already running (pid $(cat "$DATA_DIR/server.pid"))" >&2
else
    nohup .venv/bin/kyb server --data-dir "$DATA_DIR" --port "$PORT" \
        ${KYB_CLUSTER_CIDR:+--cluster-cidr "$KYB_CLUSTER_CIDR"} \
        ${KYB_SERVICE_CIDR:+--service-cidr "$KYB_SERVICE_CIDR"} >>"$DATA_DIR/server.log" 2>&1 &
    echo $! >"$DATA_DIR/server.pid"
fi
printf 'waiting for the API server on port %s' "$PORT" >&2
i=0
until curl -ksf "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 120 ]; then echo " failed; see $DATA_DIR/server.log" >&2; exit 1; fi
    printf '.' >&2
    sleep 0.5
done
echo " ready" >&2
echo "export KUBECONFIG=$DATA_DIR/kubeconfig.yaml"
echo "kubectl: $(pwd)/.venv/bin/kubectl (e.g. $(pwd)/.venv/bin/kubectl get namespaces)"
