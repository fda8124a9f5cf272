"""Pod-to-pod latency and throughput across nodes vs on one node (issue 17): run by hand,
prints figures for benchmarks/README.md.

    flock /tmp/kyb-bench.lock .venv/bin/python benchmarks/podnet_bench.py [--backend vxlan host-gw] [--pings 50]

For each backend: a LAN of namespace-hosts (kybernetes/testing/hosts.py, bridge kyblan2,
10.77.2.0/24) with one `kyb server` and two agents (CNI bridges kybo3/kybo4, pod CIDRs
10.42.251-252.0/24) joined by token with `--flannel-backend <backend>`. A busybox pod on
agent 2 serves a 10 MB file over HTTP (busybox httpd); a client pod on agent 1 (across
nodes) and one on agent 2 (same node) each ping the server pod (`--pings` echoes, 0.1 s
apart) and fetch the file `--fetches` times with busybox wget, timed inside the pod (no
kubectl exec overhead). Prints avg/min ping RTT and MB/s per path; everything is removed
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.testing.agent import AgentProcess  # noqa: E402
from kybernetes.testing.cluster import wait_for  # noqa: E402
from kybernetes.testing.hosts import Lan, hosts_prerequisites, join_token  # noqa: E402

IMAGE = "docker.io/library/busybox:1.35"
SIZE_MB = 10


def pod(name: str, node: str, command: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", command]}]}}


def measure(backend: str, pings: int, fetches: int) -> dict[str, dict[str, float]]:
    net = Lan("kyblan2", "10.77.2.0/24")
    net.up()
    try:
        srv = net.host("srv").server()
        token, pin = join_token(srv)
        agents = []
        for i, name in ((3, "ag1"), (4, "ag2")):
            host = net.host(name)
            agent = AgentProcess(srv, node_name=name, bridge=f"kybo{i}", taint=False, proxy_table=f"kybo{i}",
                                 auth_args=["--server", srv.url, "--token", token, "--ca-cert-hash", pin],
                                 pod_cidr=f"10.42.{248 + i}.0/24", wrap=host.wrap,
                                 extra_args=["--node-ip", host.ip, "--flannel-backend", backend])
            host.agents.append(agent)
            net.save_state()
            agent.start(150)
            agents.append(agent)
        serve = f"mkdir -p /www; dd if=/dev/zero of=/www/big bs=1M count={SIZE_MB} 2>/dev/null; httpd -f -p 80 -h /www"
        objs = [pod("server", "ag2", serve), pod("cross", "ag1", "sleep 3600"), pod("local", "ag2", "sleep 3600")]
        r = srv.kubectl("create", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objs))
        assert r.returncode == 0, r.stderr

        def ip_of(name: str) -> str:
            got = json.loads(srv.kubectl("get", "pod", name, "-o", "json").stdout or "{}")
            return (got.get("status") or {}).get("phase") == "Running" and got["status"].get("podIP")

        target = wait_for(lambda: ip_of("server"), timeout=60, what="server pod Running")
        for name in ("cross", "local"):
            wait_for(lambda n=name: ip_of(n), timeout=60, what=f"{name} Running")
        url = f"http://{target}/big"
        wait_for(lambda: srv.kubectl("exec", "cross", "--", "wget", "-q", "-O", "/dev/null", url).returncode == 0,
                 timeout=30, what="the file answers across nodes")
        out: dict[str, dict[str, float]] = {}
        for client in ("cross", "local"):
            r = srv.kubectl("exec", client, "--", "ping", "-q", "-c", str(pings), "-i", "0.1", target)
            m = re.search(r"min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+) ms", r.stdout)
            assert m, r.stdout + r.stderr
            loop = f"for i in $(seq {fetches}); do wget -q -O /dev/null {url} || exit 1; done"
            # busybox `time` reports to 0.01 s; the loop keeps each figure well above that.
            r = srv.kubectl("exec", client, "--", "sh", "-c", f"time sh -c '{loop}'")
            t = re.search(r"real\s+(?:(\d+)m\s*)?([\d.]+)s", r.stderr)
            assert r.returncode == 0 and t, r.stderr
            seconds = int(t.group(1) or 0) * 60 + float(t.group(2))
            out[client] = {"ping_min_ms": float(m.group(1)), "ping_avg_ms": float(m.group(2)),
                           "mb_per_s": SIZE_MB * fetches / seconds}
        return out
    finally:
        net.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", nargs="+", default=["vxlan", "host-gw"], choices=["vxlan", "host-gw"])
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--fetches", type=int, default=100)
    args = parser.parse_args()
    why = hosts_prerequisites()
    if why:
        sys.exit(f"cannot run: {why}")
    print(f"{'backend':8} {'path':22} {'ping avg ms':>11} {'ping min ms':>11} {'wget MB/s':>10}")
    for backend in args.backend:
        started = time.monotonic()
        got = measure(backend, args.pings, args.fetches)
        for client, label in (("cross", "pod -> pod, 2 nodes"), ("local", "pod -> pod, 1 node")):
            f = got[client]
            print(f"{backend:8} {label:22} {f['ping_avg_ms']:11.3f} {f['ping_min_ms']:11.3f} {f['mb_per_s']:10.0f}")
        print(f"# {backend}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(f"# load average {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
