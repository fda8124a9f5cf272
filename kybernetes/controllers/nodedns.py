"""Readiness of the nodes' DNS endpoints.

Every node agent serves cluster DNS and publishes itself in an EndpointSlice of
`kube-system/kube-dns` (managed by `kybernetes-node-dns`). A node that stops
heartbeating cannot withdraw its endpoint, so this controller does what the node
lifecycle controller does for the pods of such a node: the endpoint's `ready` and
`serving` conditions follow the node's Ready condition, and the service proxies
stop sending queries to a dead node's DNS. When the node comes back they are set
again. The agent owns the slice's addresses and ports; this controller owns its
conditions (a deleted node's slice goes with it: the Node owns it).
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes.api.labels import MANAGED_BY_LABEL, NODE_DNS_MANAGER
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import ENDPOINTSLICES, NODES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.nodelifecycle import ready_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACE = "kube-system"
FIELD_MANAGER = "node-dns-controller"


def endpoints_patch(slice_: Obj, nodes: dict[str, Obj]) -> Obj | None:
    """A merge patch of the slice's endpoints whose conditions match their nodes'
    readiness, or None when they already do. A node not (yet) known is left alone."""
    endpoints = slice_.get("endpoints") or []
    changed = False
    out = []
    for ep in endpoints:
        node = nodes.get(ep.get("nodeName") or "")
        if node is None:
            out.append(ep)
            continue
        ready = ready_status(node) == "True"
        cond = dict(ep.get("conditions") or {})
        if cond.get("ready") is not ready or cond.get("serving") is not ready:
            cond.update({"ready": ready, "serving": ready})
            changed = True
        out.append({**ep, "conditions": cond})
    return {"endpoints": out} if changed else None


class NodeDnsController:
    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.nodes = factory.informer(NODES)
        self.slices = factory.informer(ENDPOINTSLICES, NAMESPACE, label_selector=f"{MANAGED_BY_LABEL}={NODE_DNS_MANAGER}")
        self.queue = WorkQueue("nodedns")
        add_object_handler(self.slices, self._on_slice, deletes=False)
        self.nodes.add_handler(on_add=self._on_node, on_update=self._on_node_update)

    def _on_slice(self, slice_: Obj) -> None:
        self.queue.add(slice_["metadata"]["name"])

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if ready_status(old) != ready_status(new):
            self._on_node(new)

    def _on_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        for s in self.slices.list():
            if any(ep.get("nodeName") == name for ep in s.get("endpoints") or []):
                self._on_slice(s)

    async def run(self, workers: int = 1) -> None:
        await run_workers(self.queue, self.sync, workers, "node DNS endpoints of", (), level=logging.INFO,
                          logger=log)

    async def sync(self, name: str) -> Result:
        slice_ = self.slices.get(NAMESPACE, name)
        if slice_ is None:
            return Result.done()
        names = {ep.get("nodeName") or "" for ep in slice_.get("endpoints") or []}
        nodes = {n: node for n in names if (node := self.nodes.get(None, n)) is not None}
        patch = endpoints_patch(slice_, nodes)
        if patch is None:
            return Result.done()
        try:
            await self.client.patch(ENDPOINTSLICES, NAMESPACE, name, patch, field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 404:
                raise
        return Result.done()
