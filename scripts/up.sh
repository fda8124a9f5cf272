#!/bin/sh
# Brings up a kybernetes cluster on this machine: installs what is needed, starts
# `kyb server` in the background and waits until it is ready. The admin
# kubeconfig is written to $KYB_DATA_DIR/kubeconfig.yaml.
set -eu
cd "$(dirname "$0")/.."
./scripts/install.sh
DATA_DIR="${KYB_DATA_DIR:-/var/lib/kybernetes}"
PORT="${KYB_PORT:-6443}"
mkdir -p "$DATA_DIR"
if [ -f "$DATA_DIR/server.pid" ] && kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null; then
    echo "kyb server already running (pid $(cat "$DATA_DIR/server.pid"))" >&2
else
    nohup .venv/bin/kyb server --data-dir "$DATA_DIR" --port "$PORT" >>"$DATA_DIR/server.log" 2>&1 &
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
