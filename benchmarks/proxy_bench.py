"""Service proxy benchmark (issue 5), run by hand as root.

    .venv/bin/python benchmarks/proxy_bench.py [--services 1000] [--endpoints 10] [--rounds 5]
    .venv/bin/python benchmarks/proxy_bench.py --ready-to-traffic [--rounds 10]

Rule sync (no cluster needed): `--services` Services with `--endpoints` ready endpoints
each, as the proxy holds them. Times, into a table of its own (`kyb-bench`, removed
at the end): a full sync (plan + render + `nft -f` of the whole table into an empty
kernel table, and again over an existing one, as after a restart) and an incremental
sync (one endpoint of one Service changes). Median and worst over `--rounds`.

Endpoint ready → traffic (`--ready-to-traffic`): a real `kyb server` and `kyb agent`;
a Service with one pod whose readiness probe waits for a file. The file is created;
the time from the moment a watch sees the pod Ready to the first answer through the
Service's cluster IP (EndpointSlice controller, proxy sync, kernel) is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.proxy import model, nftables  # noqa: E402

TABLE = "kyb-bench"


def objects(n_services: int, n_endpoints: int, bump: int = 0) -> tuple[list[dict], list[dict]]:
    services, slices = [], []
    for i in range(n_services):
        ip = f"10.43.{i // 250}.{i % 250 + 2}"
        services.append({"metadata": {"namespace": "bench", "name": f"svc-{i}"},
                         "spec": {"type": "NodePort", "clusterIP": ip, "clusterIPs": [ip],
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                             "nodePort": 30000 + i}]}})
        eps = [{"addresses": [f"10.42.{(i * n_endpoints + j) // 250 % 250}.{(i * n_endpoints + j) % 250 + 2}"],
                "conditions": {"ready": True}, "nodeName": "bench"} for j in range(n_endpoints)]
        if i == 0 and bump:
            eps[0]["addresses"] = [f"10.41.0.{bump}"]
        slices.append({"metadata": {"namespace": "bench", "name": f"svc-{i}-x",
                                    "labels": {model.SERVICE_NAME_LABEL: f"svc-{i}"}},
                       "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": eps})
    return services, slices


async def timed_sync(services: list[dict], slices: list[dict], old: nftables.Ruleset | None
                     ) -> tuple[float, float, nftables.Ruleset]:
    started = time.perf_counter()
    wanted = nftables.build(model.service_ports(services, slices), "bench", "10.42.0.0/16")
    script = nftables.render(wanted, old, TABLE)
    planned = time.perf_counter()
    await nftables.apply(script)
    return planned - started, time.perf_counter() - started, wanted


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, worst {max(values):.3f} s"


async def rule_sync(n_services: int, n_endpoints: int, rounds: int) -> None:
    services, slices = objects(n_services, n_endpoints)
    fresh, over, incremental, plan_full, plan_inc = [], [], [], [], []
    try:
        for r in range(rounds):
            await nftables.delete_table(TABLE)
            p, t, applied = await timed_sync(services, slices, None)
            fresh.append(t)
            plan_full.append(p)
            _, t, applied = await timed_sync(services, slices, None)
            over.append(t)
            changed_services, changed_slices = objects(n_services, n_endpoints, bump=r + 2)
            p, t, _ = await timed_sync(changed_services, changed_slices, applied)
            incremental.append(t)
            plan_inc.append(p)
        chains = len(applied.chains)
        print(f"{n_services} services x {n_endpoints} endpoints ({chains} chains), {rounds} rounds")
        print(f"  full sync, empty table       {summary(fresh)} (plan and render {statistics.median(plan_full):.3f} s)")
        print(f"  full sync over existing one  {summary(over)}")
        print(f"  incremental (one endpoint)   {summary(incremental)} "
              f"(plan and render {statistics.median(plan_inc):.3f} s)")
    finally:
        await nftables.delete_table(TABLE)


async def ready_to_traffic(rounds: int) -> None:
    from kybernetes.client import ApiClient
    from kybernetes.client.resources import NAMESPACES, PODS, SERVICES
    from kybernetes.testing.agent import TEST_TAINT, AgentProcess
    from kybernetes.testing.cluster import ServerProcess

    server = ServerProcess(agent=False)
    server.start()
    node = AgentProcess(server, node_name="bench-node", bridge="kybb0", proxy_table="kyb-bench-rt")
    client = await ApiClient.from_kubeconfig(server.kubeconfig)
    try:
        node.start()
        await client.create(NAMESPACES, None, {"metadata": {"name": "bench"}})
        figures = []
        for r in range(rounds):
            name = f"r{r}"
            pod = {"metadata": {"name": name, "labels": {"app": name}},
                   "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                            "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "web", "image": "docker.io/library/busybox:1.35",
                                            "command": ["sh", "-c", "echo ok > /tmp/index.html; "
                                                        "httpd -f -p 80 -h /tmp"],
                                            "readinessProbe": {"exec": {"command": ["test", "-e", "/ready"]},
                                                               "periodSeconds": 1}}]}}
            await client.create(PODS, "bench", pod)
            svc = await client.create(SERVICES, "bench", {"metadata": {"name": name}, "spec": {
                "selector": {"app": name}, "ports": [{"port": 80}]}})
            url = f"http://{svc['spec']['clusterIP']}/index.html"
            while True:
                p = await client.get(PODS, "bench", name)
                if (p.get("status") or {}).get("phase") == "Running":
                    break
                await asyncio.sleep(0.1)
            touched = server.kubectl("exec", "-n", "bench", name, "--", "touch", "/ready")
            if not touched.ok:
                raise RuntimeError(touched.stderr)
            while True:
                p = await client.get(PODS, "bench", name)
                if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])):
                    ready_at = time.monotonic()
                    break
                await asyncio.sleep(0.005)
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:
                        resp.read()
                    break
                except OSError:
                    await asyncio.sleep(0.005)
            figures.append(time.monotonic() - ready_at)
        s = sorted(figures)
        print(f"endpoint ready -> traffic over {rounds} services: median {statistics.median(s):.3f} s, "
              f"worst {s[-1]:.3f} s")
    finally:
        await client.close()
        node.cleanup()
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ready-to-traffic", action="store_true")
    args = parser.parse_args()
    if args.ready_to_traffic:
        asyncio.run(ready_to_traffic(args.rounds))
    else:
        asyncio.run(rule_sync(args.services, args.endpoints, args.rounds))
