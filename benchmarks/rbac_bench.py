"""RBAC cost benchmark: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/rbac_bench.py [--bindings 1000] [--roles 200] [--rounds 3]

Starts a real `kyb server` on a fresh data dir, writes `--roles` ClusterRoles and
`--bindings` RoleBindings (spread over 50 namespaces and many users and groups, a few
of them the bench user's), then measures from this process over HTTPS, both
identities by client certificate: GET/s of one object and creates/s (16 clients
each) as `system:masters` (the fast path, no lookup) and as a user allowed through
RBAC (a RoleBinding to `edit`), alternating, `--rounds` times. Also the in-process
cost of one decision and of rebuilding the index after an RBAC write.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import Client, bench_creates, bench_gets, server_cpu  # noqa: E402

from kybernetes.api.rbac import Attributes, RbacIndex  # noqa: E402
from kybernetes.apiserver import pki  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

NS = "bench"
USER = "bench-user"
USER_GROUPS = ["team-3", "team-7"]


def cluster_role(i: int) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"bench-{i}"},
            "rules": [{"apiGroups": ["", "apps"], "resources": [f"res{i}", f"res{i}/status", "pods"],
                       "verbs": ["get", "list", "watch"]},
                      {"apiGroups": [f"g{i}.example.com"], "resources": ["*"], "verbs": ["*"]}]}


def role_binding(i: int, roles: int) -> dict:
    # Every 100th binding names one of the bench user's groups, in other namespaces than the measured one.
    subject = ({"kind": "Group", "name": USER_GROUPS[i % 2]} if i % 100 == 0
               else {"kind": "User", "name": f"user-{i}"})
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": f"rb-{i}", "namespace": f"ns-{i % 50}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"bench-{i % roles}"},
            "subjects": [{**subject, "apiGroup": "rbac.authorization.k8s.io"}]}


async def populate(admin: Client, bindings: int, roles: int) -> None:
    for i in range(50):
        await admin.post("/api/v1/namespaces", {"metadata": {"name": f"ns-{i}"}})
    await admin.post("/api/v1/namespaces", {"metadata": {"name": NS}})
    sem = asyncio.Semaphore(16)

    async def post(path: str, body: dict) -> None:
        async with sem:
            status = await admin.post(path, body)
            if status != 201:
                raise RuntimeError(f"{path}: {status}")

    await asyncio.gather(*(post("/apis/rbac.authorization.k8s.io/v1/clusterroles", cluster_role(i))
                           for i in range(roles)))
    await asyncio.gather(*(post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/ns-{i % 50}/rolebindings",
                                role_binding(i, roles)) for i in range(bindings)))
    await post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]})
    await post(f"/api/v1/namespaces/{NS}/configmaps",
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"a": "b"}})


def in_process(bindings: int, roles: int) -> None:
    crs = [cluster_role(i) for i in range(roles)]
    rbs = [role_binding(i, roles) for i in range(bindings)]
    edit = {"metadata": {"name": "edit"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                                                     "verbs": ["get", "create"]}]}
    mine = {"metadata": {"name": "bench-edit", "namespace": NS},
            "roleRef": {"kind": "ClusterRole", "name": "edit"}, "subjects": [{"kind": "User", "name": USER}]}
    t0 = time.perf_counter()
    for _ in range(10):
        idx = RbacIndex([], [*crs, edit], [*rbs, mine], [])
    build = (time.perf_counter() - t0) / 10
    attrs = Attributes(USER, (*USER_GROUPS, "system:authenticated"), "get", "", "configmaps", "", NS, "one")
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        idx.authorize(attrs)
    per = (time.perf_counter() - t0) / n
    print(f"index rebuild ({bindings} RoleBindings, {roles} ClusterRoles): {build * 1000:.1f} ms; "
          f"one allowed decision: {per * 1e6:.1f} µs")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindings", type=int, default=1000)
    ap.add_argument("--roles", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--creates", type=int, default=1500)
    args = ap.parse_args()
    in_process(args.bindings, args.roles)
    server = ServerProcess()
    server.start(60)
    tmp = tempfile.mkdtemp(prefix="rbac-bench-")
    try:
        paths = pki.pki_paths(server.data_dir)
        cert, key = pki.issue_client_cert(paths, USER, USER_GROUPS)
        user_cert, user_key = os.path.join(tmp, "user.crt"), os.path.join(tmp, "user.key")
        open(user_cert, "wb").write(cert)
        open(user_key, "wb").write(key)
        admin = Client(server, cert=(paths.admin_cert, paths.admin_key))
        user = Client(server, cert=(user_cert, user_key))
        pid = server.proc.pid if server.proc is not None else 0
        async with admin, user:
            await populate(admin, args.bindings, args.roles)
            # The aggregation controller fills `edit`; wait until the bench user may read.
            for _ in range(200):
                try:
                    await user.get(f"/api/v1/namespaces/{NS}/configmaps/one")
                    break
                except RuntimeError:
                    await asyncio.sleep(0.1)
            one = f"/api/v1/namespaces/{NS}/configmaps/one"
            results: dict[str, dict[str, list[float]]] = {"masters": {}, "rbac": {}}
            for rnd in range(args.rounds):
                for name, c in (("masters", admin), ("rbac", user)):
                    cpu0 = server_cpu(pid)
                    gets = await bench_gets(c, one, 4.0, 16)
                    cpu_get = server_cpu(pid) - cpu0
                    cpu0 = server_cpu(pid)
                    creates = await bench_creates(c, NS, args.creates, 16)
                    cpu_create = (server_cpu(pid) - cpu0) * 1000 / args.creates
                    r = results[name]
                    r.setdefault("gets", []).append(gets)
                    r.setdefault("creates", []).append(creates)
                    r.setdefault("cpu_create", []).append(cpu_create)
                    r.setdefault("cpu_get", []).append(cpu_get * 1000 / max(1.0, gets * 4.0))
                    print(f"round {rnd + 1} {name}: GET/s {gets:.0f}, creates/s {creates:.0f} "
                          f"(server CPU per create {cpu_create:.3f} ms)")
                    # bench_creates reuses its names: the next run starts from none.
                    await delete_configmaps(admin)
            for what in ("gets", "creates"):
                m = statistics.median(results["masters"][what])
                u = statistics.median(results["rbac"][what])
                print(f"median {what}/s: system:masters {m:.0f}, RBAC user {u:.0f} ({(m - u) / m * 100:+.1f}% slower)")
            for what in ("cpu_get", "cpu_create"):
                m = statistics.median(results["masters"][what])
                u = statistics.median(results["rbac"][what])
                print(f"median server CPU ms per {what[4:]}: system:masters {m:.3f}, RBAC user {u:.3f} "
                      f"({(u - m) / m * 100:+.1f}%)")
    finally:
        server.cleanup()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


async def delete_configmaps(admin: Client) -> None:
    """Remove the round's ConfigMaps so the next round creates the same names."""
    assert admin.session is not None
    async with admin.session.delete(admin.base + f"/api/v1/namespaces/{NS}/configmaps?labelSelector=bench%3Dyes") as r:
        await r.read()


if __name__ == "__main__":
    asyncio.run(main())
