"""The built-in load balancer (like k3s's ServiceLB): Services of type LoadBalancer
get the addresses of the cluster's nodes as their ingress, without any cloud.

Traffic is taken in by every node's service proxy, which opens the Service's port on
the node's own addresses; this controller only publishes where that is:
`status.loadBalancer.ingress` lists the ExternalIP (or else the InternalIP) of every
Ready node that runs real pods (simulated nodes have no proxy), with `ipMode: VIP`.
Services with a `loadBalancerClass` belong to another implementation and are left
alone; a Service that stops being a LoadBalancer loses its ingress.
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import NODES, SERVICES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.nodelifecycle import ready_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "servicelb-controller"
SIMULATED_LABEL = "kybernetes.io/simulated"


def node_address(node: Obj) -> str:
    """The address a node takes load-balanced traffic on; "" when it should not."""
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    if (meta.get("labels") or {}).get(SIMULATED_LABEL) == "true" or meta.get("deletionTimestamp"):
        return ""
    if ready_status(node) != "True" or (node.get("spec") or {}).get("unschedulable"):
        return ""
    by_type = {a.get("type"): a.get("address", "") for a in status.get("addresses") or []}
    return by_type.get("ExternalIP") or by_type.get("InternalIP") or ""


def handled(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def wanted_ingress(svc: Obj, nodes: list[Obj]) -> list[Obj]:
    if not handled(svc):
        return []
    addresses = sorted({a for a in (node_address(n) for n in nodes) if a})
    return [{"ip": a, "ipMode": "VIP"} for a in addresses]


def ingress_patch(svc: Obj, nodes: list[Obj]) -> Obj | None:
    """The status patch to send, or None when the status is already right."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass"):
        return None
    current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    wanted = wanted_ingress(svc, nodes)
    if current == wanted:
        return None
    return {"status": {"loadBalancer": {"ingress": wanted} if wanted else {}}}


class ServiceLBController:
    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.services = factory.informer(SERVICES)
        self.nodes = factory.informer(NODES)
        self.queue = WorkQueue("servicelb")
        add_object_handler(self.services, self._on_service, deletes=False)
        self.nodes.add_handler(on_add=self._on_node, on_update=self._on_node_update, on_delete=self._on_node)

    def _on_service(self, svc: Obj) -> None:
        lb = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        if handled(svc) or lb:
            meta = svc["metadata"]
            self.queue.add(f"{meta.get('namespace', '')}/{meta['name']}")

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if node_address(old) != node_address(new):
            self._on_node(new)

    def _on_node(self, _node: Obj) -> None:
        for svc in self.services.list():
            if handled(svc):
                self._on_service(svc)

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "load balancers of", (), level=logging.INFO, logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.partition("/")
        svc = self.services.get(ns, name)
        if svc is None:
            return Result.done()
        patch = ingress_patch(svc, self.nodes.list())
        if patch is None:
            return Result.done()
        try:
            await self.client.patch(SERVICES, ns, name, patch, subresource="status", field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 404:
                raise
        return Result.done()
