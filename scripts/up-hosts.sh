#!/bin/sh
# A multi-host cluster on this one machine, to try: N network-namespace "hosts" on a LAN
# bridge (kyblan0, 10.77.0.0/24); the first S run `kyb server`, the others each run a
# `kyb agent` (with its own containerd) that joined the first with a bootstrap token.
#   ./scripts/up-hosts.sh [N [S]]  bring up N hosts (default 3), S of them servers (default 1:
#                                  SQLite; more: embedded etcd, joined), the others agents
#   ./scripts/up-hosts.sh --down   remove them all (pods, processes, mounts, namespaces, bridge)
# Needs root. KYB_LAN / KYB_LAN_CIDR pick another bridge and network; KYB_LAN_NAT=1 lets
# the hosts reach beyond this machine; KYB_SERVER_ARGS / KYB_AGENT_ARGS add arguments to
# every kyb server / kyb agent. A thin wrapper over `python -m kybernetes.testing.hosts`.
set -eu
cd "$(dirname "$0")/.."
LAN="${KYB_LAN:-kyblan0}"
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
if [ "${1:-}" = "--down" ]; then
    exec "$PY" -m kybernetes.testing.hosts down --lan "$LAN"
fi
if "$PY" -m kybernetes.testing.hosts status --lan "$LAN" >/dev/null; then
    echo "$LAN is up already; remove it first: $0 --down" >&2
    exit 1
fi
HOSTS="${1:-3}"
LOG="/tmp/kyb-hosts-$LAN.log"
: >"$LOG"
# The supervisor stays up and owns the hosts' processes; --down asks it to remove them.
setsid nohup "$PY" -m kybernetes.testing.hosts up --hosts "$HOSTS" --servers "${2:-1}" --lan "$LAN" \
    --cidr "${KYB_LAN_CIDR:-10.77.0.0/24}" ${KYB_LAN_NAT:+--nat} \
    --server-args "${KYB_SERVER_ARGS:-}" --agent-args "${KYB_AGENT_ARGS:-}" >>"$LOG" 2>&1 &
printf 'bringing up %s hosts on %s' "$HOSTS" "$LAN" >&2
i=0
until grep -q '^READY ' "$LOG"; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $! 2>/dev/null; then
        echo " failed; see $LOG" >&2
        exit 1
    fi
    printf '.' >&2
    sleep 0.5
done
echo >&2
grep -v '^READY ' "$LOG"
echo "remove them with: $0 --down"
