"""The pod garbage collector: removes pods nobody else will ever finish.

Periodically (and soon after a node disappears) it force-deletes, with a grace
period of 0 because no node agent is left to confirm a graceful stop:

* pods bound to a node that no longer exists, once the node has been missing for
  a quarantine period and a live GET confirms it is gone (an informer that lags
  behind a re-registered node must not cost its pods); such pods are first marked
  Failed with a `DisruptionTarget` condition, as Kubernetes does;
* terminating pods that were never scheduled, and terminating pods on a node that
  is not Ready and carries the `node.kubernetes.io/out-of-service` taint;
* terminated (Succeeded/Failed) pods beyond `terminated_pod_threshold`, evicted
  ones first, then oldest first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from kybernetes.api.pods import pod_is_terminal
from kybernetes.api.timefmt import now_rfc3339
from kybernetes.client import ApiError, Client, Informers
from kybernetes.client.resources import NODES, PODS
from kybernetes.controllers.nodelifecycle import ready_status

log = logging.getLogger(__name__)

OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
DEFAULT_TERMINATED_THRESHOLD = 12500
DEFAULT_QUARANTINE_SECONDS = 40.0
DEFAULT_PERIOD_SECONDS = 20.0
FIELD_MANAGER = "pod-garbage-collector"

Pod = dict[str, Any]


# -- decisions (pure) -------------------------------------------------------------------------


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def is_evicted(pod: Pod) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def node_name(pod: Pod) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def terminated_to_delete(pods: Iterable[Pod], threshold: int) -> list[Pod]:
    """Terminated pods beyond `threshold` (0 or less turns this off): evicted pods go first,
    then the oldest; equal timestamps are ordered by name so the choice is stable."""
    if threshold <= 0:
        return []
    done = [p for p in pods if pod_is_terminal(p)]
    excess = len(done) - threshold
    if excess <= 0:
        return []
    done.sort(key=lambda p: (not is_evicted(p), _meta(p).get("creationTimestamp") or "", _meta(p).get("name") or ""))
    return done[:excess]


def missing_nodes(pods: Iterable[Pod], known_nodes: Iterable[str]) -> set[str]:
    """Nodes that bound pods name but the node informer does not have."""
    known = set(known_nodes)
    return {n for p in pods if (n := node_name(p)) and n not in known}


def quarantine_expired(first_missing: dict[str, float], now: float, quarantine: float) -> list[str]:
    """Missing nodes whose quarantine is over, to be confirmed with a live GET."""
    return sorted(n for n, since in first_missing.items() if now - since >= quarantine)


def pods_on_nodes(pods: Iterable[Pod], nodes: set[str]) -> list[Pod]:
    return [p for p in pods if node_name(p) in nodes]


def unscheduled_terminating(pods: Iterable[Pod]) -> list[Pod]:
    """Pods being deleted that never got a node: no agent will ever finish their deletion."""
    return [p for p in pods if _meta(p).get("deletionTimestamp") and not node_name(p)]


def out_of_service(node: dict[str, Any]) -> bool:
    """A node the administrator declared out of service (and that is not Ready)."""
    tainted = any(t.get("key") == OUT_OF_SERVICE_TAINT and t.get("effect") in ("NoExecute", "NoSchedule")
                  for t in (node.get("spec") or {}).get("taints") or ())
    return tainted and ready_status(node) != "True"


def terminating_out_of_service(pods: Iterable[Pod], nodes: dict[str, dict[str, Any]]) -> list[Pod]:
    out = []
    for p in pods:
        if not _meta(p).get("deletionTimestamp"):
            continue
        node = nodes.get(node_name(p))
        if node is not None and out_of_service(node):
            out.append(p)
    return out


def failed_status_patch(now: str, message: str = "PodGC: node no longer exists") -> dict[str, Any]:
    """The status a pod collected from a deleted node gets before it goes."""
    return {"status": {"phase": "Failed", "conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC", "message": message,
        "lastTransitionTime": now}]}}


# -- the controller (thin async shell) ---------------------------------------------------------


class PodGCController:
    def __init__(self, client: Client, factory: Informers,
                 terminated_pod_threshold: int = DEFAULT_TERMINATED_THRESHOLD,
                 quarantine_seconds: float = DEFAULT_QUARANTINE_SECONDS,
                 period_seconds: float = DEFAULT_PERIOD_SECONDS, concurrency: int = 16,
                 clock: Any = time.monotonic) -> None:
        self.client = client
        self.threshold = terminated_pod_threshold
        self.quarantine = quarantine_seconds
        self.period = period_seconds
        self.clock = clock
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)
        self._first_missing: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(max(1, concurrency))
        self.nodes.add_handler(on_add=self._on_node_added, on_delete=self._on_node_deleted)

    def _on_node_added(self, node: dict[str, Any]) -> None:
        self._first_missing.pop(_meta(node).get("name") or "", None)

    def _on_node_deleted(self, node: dict[str, Any]) -> None:
        name = _meta(node).get("name") or ""
        self._first_missing.setdefault(name, self.clock())
        # Come back as soon as the quarantine of this node is over, not a whole period later.
        asyncio.get_running_loop().call_later(self.quarantine + 0.05, self._wake.set)

    async def run(self, workers: int = 2) -> None:
        self._sem = asyncio.Semaphore(max(1, workers * 8))
        while True:
            try:
                await self.gc_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("pod gc: pass failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.period)
            except TimeoutError:
                pass

    async def gc_once(self) -> dict[str, int]:
        """One pass; returns how many pods each rule deleted."""
        pods = self.pods.list()
        nodes = {(_meta(n).get("name") or ""): n for n in self.nodes.list()}
        counts = {}
        counts["terminated"] = await self._delete_all(terminated_to_delete(pods, self.threshold))
        counts["orphaned"] = await self._gc_orphaned(pods, nodes)
        counts["unscheduled"] = await self._delete_all(unscheduled_terminating(pods))
        counts["out_of_service"] = await self._delete_all(terminating_out_of_service(pods, nodes))
        return counts

    async def _gc_orphaned(self, pods: list[Pod], nodes: dict[str, dict[str, Any]]) -> int:
        now = self.clock()
        missing = missing_nodes(pods, nodes)
        for name in list(self._first_missing):
            if name not in missing:
                del self._first_missing[name]
        for name in missing:
            self._first_missing.setdefault(name, now)
        gone = set()
        for name in quarantine_expired(self._first_missing, now, self.quarantine):
            try:
                await self.client.get(NODES, None, name)
            except ApiError as e:
                if e.code == 404:
                    gone.add(name)
                    continue
                log.info("pod gc: checking node %s: %s", name, e)
                continue
            # The node exists and our informer is behind: start its quarantine over.
            self._first_missing.pop(name, None)
        if not gone:
            return 0
        victims = pods_on_nodes(pods, gone)
        return await self._delete_all(victims, mark_failed=True)

    async def _delete_all(self, pods: list[Pod], mark_failed: bool = False) -> int:
        results = await asyncio.gather(*(self._delete(p, mark_failed) for p in pods))
        return sum(results)

    async def _delete(self, pod: Pod, mark_failed: bool) -> bool:
        meta = _meta(pod)
        ns, name, uid = meta.get("namespace"), meta.get("name") or "", meta.get("uid")
        async with self._sem:
            if mark_failed and not pod_is_terminal(pod):
                try:
                    await self.client.patch(PODS, ns, name, failed_status_patch(now_rfc3339()), "strategic",
                                            subresource="status", field_manager=FIELD_MANAGER)
                except ApiError as e:
                    log.info("pod gc: marking %s/%s failed: %s", ns, name, e)
            try:
                await self.client.delete(PODS, ns, name, grace_period_seconds=0,
                                         preconditions={"uid": uid} if uid else None)
            except ApiError as e:
                if e.code not in (404, 409):
                    log.warning("pod gc: deleting %s/%s: %s", ns, name, e)
                return False
        log.info("pod gc: force-deleted %s/%s (node %r)", ns, name, node_name(pod))
        return True
