#!/bin/sh
# Installs what kybernetes needs on a Debian machine (as root): system packages,
# a virtualenv in .venv and the project with its test tools. Safe to re-run.
set -eu
cd "$(dirname "$0")/.."

need_apt=""
command -v python3 >/dev/null 2>&1 || need_apt="python3"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt="$need_apt python3-venv"
command -v curl >/dev/null 2>&1 || need_apt="$need_apt curl"
# The node agent's runtime, pod network and offline images.
command -v containerd >/dev/null 2>&1 || need_apt="$need_apt containerd"
command -v runc >/dev/null 2>&1 || need_apt="$need_apt runc"
# crun creates containers faster than runc; the agent defaults to it where the host allows.
command -v crun >/dev/null 2>&1 || need_apt="$need_apt crun"
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need_apt="$need_apt containernetworking-plugins"
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ! ldd /bin/busybox >/dev/null 2>&1 \
    || need_apt="$need_apt busybox-static"
command -v ip >/dev/null 2>&1 || need_apt="$need_apt iproute2"
command -v iptables >/dev/null 2>&1 || need_apt="$need_apt iptables"
command -v nft >/dev/null 2>&1 || need_apt="$need_apt nftables"
# Programs the test suite starts: a local image registry for the image-pull tests.
command -v docker-registry >/dev/null 2>&1 || need_apt="$need_apt docker-registry"
# A C HTTP load generator for benchmarks/get_scaling_bench.py (a Python client needs a core itself).
command -v wrk >/dev/null 2>&1 || need_apt="$need_apt wrk"
# etcd for `kyb server --cluster-init` (run by kyb as its own child) and the etcd store's tests;
# etcdctl for `kyb snapshot restore` of an etcd snapshot.
{ command -v etcd && command -v etcdctl; } >/dev/null 2>&1 || need_apt="$need_apt etcd-server etcd-client"
if [ -n "$need_apt" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$need_apt" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need_apt python3-pip
fi
# The etcd-server package starts its own system etcd on port 2379; kyb runs its members itself.
if [ -f /lib/systemd/system/etcd.service ] && [ "$(id -u)" = 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop etcd >/dev/null 2>&1 || true
        systemctl mask etcd >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/etcd ]; then
        # Not `/etc/init.d/etcd stop`: it stops every /usr/bin/etcd, kyb's members too.
        update-rc.d etcd disable >/dev/null 2>&1 || true
        if [ -s /run/etcd.pid ]; then
            kill "$(cat /run/etcd.pid)" 2>/dev/null || true
            rm -f /run/etcd.pid
        fi
    fi
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kybernetes needs Python 3.11 or newer")'
if [ ! -x .venv/bin/python ]; then
    echo "creating virtualenv .venv" >&2
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# The project is installed in place, so nothing compiled it. Where PYTHONDONTWRITEBYTECODE
# is set (it is on the machines this project is built on), every `kyb` process would then
# compile each module from source again: 0.3-1 s per server, controller manager, scheduler,
# API worker and agent start. Python still reads bytecode written beforehand.
.venv/bin/python -m compileall -q -j 0 kybernetes >/dev/null
# Likewise the protobuf codecs the API server generates (kybernetes/api/protobuf.py).
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -c 'from kybernetes.api import protobuf; protobuf.compile_codecs()'
