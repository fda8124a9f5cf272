"""How long one controller sync holds the event loop: run by hand, prints figures for
benchmarks/README.md.

    .venv/bin/python benchmarks/controller_sync_hold.py [--pods 1000 5000] [--replicasets 11] [--rounds 20]

All controllers of the controller manager share one event loop, so a sync that runs
pure Python for long between two awaits delays every other controller, the informers
and the leader lease. This drives the real `ReplicaSetController.sync` and
`DeploymentController.sync` over in-memory caches (no server) and times each
synchronous step of the coroutine, i.e. each stretch between two awaits: the longest
step is how long that sync keeps everything else waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import statistics
import time
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from kybernetes.controllers.deployment import DeploymentController
from kybernetes.controllers.deployment_plan import pod_template_hash
from kybernetes.controllers.replicaset import ReplicaSetController

Obj = dict[str, Any]
NOW = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StepTimer(Awaitable[Any]):
    """Await a coroutine and record how long each of its synchronous steps took."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.steps: list[float] = []

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            t = time.perf_counter()
            try:
                yielded = self.coro.throw(error) if error is not None else self.coro.send(value)
            except StopIteration as stop:
                self.steps.append(time.perf_counter() - t)
                return stop.value
            self.steps.append(time.perf_counter() - t)
            try:
                value, error = (yield yielded), None
            except BaseException as e:  # noqa: BLE001 - handed on to the coroutine
                value, error = None, e


class Cache:
    """Indexed like the informer's cache, so that lookups cost what they cost there."""

    def __init__(self, objs: list[Obj]) -> None:
        self.objs = objs
        self.owned: dict[str, list[Obj]] = {}
        for o in objs:
            for r in o["metadata"].get("ownerReferences") or []:
                self.owned.setdefault(r.get("uid"), []).append(o)

    def add_handler(self, **_: object) -> None:
        pass

    def get(self, ns: str | None, name: str) -> Obj | None:
        return next((o for o in self.objs if o["metadata"].get("namespace") == ns and o["metadata"]["name"] == name),
                    None)

    def by_index(self, index: str, value: str) -> list[Obj]:
        if index == "namespace":
            return [o for o in self.objs if o["metadata"].get("namespace") == value]
        if index == "orphan":
            return []
        return list(self.owned.get(value, []))


class Factory:
    def __init__(self, **caches: list[Obj]) -> None:
        self.caches = {k: Cache(v) for k, v in caches.items()}

    def informer(self, res: Any, **_: object) -> Cache:
        return self.caches.setdefault(res.plural, Cache([]))


class Client:
    """Every call takes one trip through the event loop, as a real request would."""

    async def _io(self, obj: Obj | None = None) -> Obj:
        await asyncio.sleep(0)
        return copy.deepcopy(obj) if obj is not None else {"metadata": {}}

    async def update(self, res: Any, ns: Any, name: str, obj: Obj, **_: object) -> Obj:
        return await self._io(obj)

    async def patch(self, res: Any, ns: Any, name: str, body: Obj, *_: object, **__: object) -> Obj:
        return await self._io(body)

    async def create(self, res: Any, ns: Any, obj: Obj, **_: object) -> Obj:
        return await self._io(obj)

    async def get(self, res: Any, ns: Any, name: str) -> Obj:
        return await self._io()

    async def delete(self, *_: object, **__: object) -> None:
        await self._io()

    async def event(self, *_: object, **__: object) -> None:
        await self._io()


def _template(image: str) -> Obj:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def replicaset_with_pods(n: int) -> tuple[Obj, list[Obj]]:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web", "namespace": "bench", "uid": "rs-uid", "generation": 1,
                       "resourceVersion": "1"},
          "spec": {"replicas": n, "selector": {"matchLabels": {"app": "web"}}, "template": _template("web:1")},
          "status": {"replicas": 0}}
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": True}
    pods = [{"metadata": {"name": f"web-{i}", "namespace": "bench", "uid": f"pod-{i}", "labels": {"app": "web"},
                          "ownerReferences": [ref], "creationTimestamp": NOW},
             "spec": {"nodeName": f"node-{i % 50}"},
             "status": {"phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}]}}
            for i in range(n)]
    return rs, pods


def deployment_with_history(k: int, replicas: int) -> tuple[Obj, list[Obj]]:
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "bench", "uid": "d-uid", "generation": k, "resourceVersion": "1",
                      "annotations": {"deployment.kubernetes.io/revision": str(k)}},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "progressDeadlineSeconds": 600,
                  "revisionHistoryLimit": k, "template": _template(f"web:{k}"),
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
         "status": {}}
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": True}
    rss = []
    for i in range(1, k + 1):
        t = _template(f"web:{i}")
        h = pod_template_hash(t)
        t["metadata"]["labels"]["pod-template-hash"] = h
        mid = i in (k - 1, k)  # mid-rollout: the last two share the replicas
        size = replicas // 2 if mid else 0
        rss.append({"metadata": {"name": f"web-{h}", "namespace": "bench", "uid": f"rs-{i}", "generation": 1,
                                 "labels": dict(t["metadata"]["labels"]), "ownerReferences": [ref],
                                 "creationTimestamp": f"2026-01-01T00:00:{i:02d}Z",
                                 "annotations": {"deployment.kubernetes.io/revision": str(i)}},
                    "spec": {"replicas": size, "selector": {"matchLabels": {"app": "web", "pod-template-hash": h}},
                             "template": t},
                    "status": {"replicas": size, "readyReplicas": size, "availableReplicas": size,
                               "observedGeneration": 1}})
    return d, rss


async def measure(make: Any, rounds: int) -> tuple[float, float, float]:
    """Median and max of the longest step per sync, and median wall time per sync (ms)."""
    longest, walls = [], []
    for _ in range(rounds):
        ctl, key = make()
        timer = StepTimer(ctl.sync(key))
        t = time.perf_counter()
        await timer
        walls.append(time.perf_counter() - t)
        longest.append(max(timer.steps))
    return statistics.median(longest) * 1e3, max(longest) * 1e3, statistics.median(walls) * 1e3


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--replicasets", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    print(f"{'sync':<44} {'longest step p50':>16} {'max':>8} {'wall p50':>9}")
    for n in args.pods:
        rs, pods = replicaset_with_pods(n)

        def make_rs(rs: Obj = rs, pods: list[Obj] = pods) -> tuple[Any, str]:
            factory = Factory(replicasets=[rs], pods=pods)
            return ReplicaSetController(Client(), factory), "bench/web"  # type: ignore[arg-type]

        p50, mx, wall = await measure(make_rs, args.rounds)
        print(f"{f'ReplicaSet, {n} ready pods (status write)':<44} {p50:>13.2f} ms {mx:>5.2f} ms {wall:>6.2f} ms")
    for replicas in (10, 1000):
        d, rss = deployment_with_history(args.replicasets, replicas)

        def make_d(d: Obj = d, rss: list[Obj] = rss) -> tuple[Any, str]:
            factory = Factory(deployments=[d], replicasets=rss)
            return DeploymentController(Client(), factory), "bench/web"  # type: ignore[arg-type]

        p50, mx, wall = await measure(make_d, args.rounds)
        label = f"Deployment, {args.replicasets} ReplicaSets, {replicas} replicas"
        print(f"{label:<44} {p50:>13.2f} ms {mx:>5.2f} ms {wall:>6.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
