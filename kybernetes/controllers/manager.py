"""The controller manager: every controller of the cluster on shared informers.

`run_controllers` builds one informer factory for all controllers (one list +
watch per resource for the whole process), starts it, waits for the caches to
fill, then runs every controller until cancelled. `kyb controller-manager`
calls it under leader election.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.client import ApiClient, InformerFactory
from kybernetes.client.resources import PODS
from kybernetes.controllers.deployment import DeploymentController
from kybernetes.controllers.endpoints import EndpointsController
from kybernetes.controllers.endpointslice import EndpointSliceController
from kybernetes.controllers.garbagecollector import GarbageCollectorController
from kybernetes.controllers.namespace import NamespaceController
from kybernetes.controllers.nodedns import NodeDnsController
from kybernetes.controllers.nodelifecycle import NodeLifecycleController
from kybernetes.controllers.podgc import PodGCController
from kybernetes.controllers.podutil import controller_view
from kybernetes.controllers.replicaset import ReplicaSetController
from kybernetes.controllers.serviceaccount import ServiceAccountController
from kybernetes.controllers.servicelb import ServiceLBController

log = logging.getLogger(__name__)


@dataclass
class ControllerOptions:
    node_monitor_grace_period: int = 40
    cluster_cidr: str = "10.42.0.0/16"
    node_cidr_mask_size: int = 24
    workers: int = 4
    terminated_pod_threshold: int = 12500


def build_controllers(client: ApiClient, factory: InformerFactory,
                      options: ControllerOptions) -> list[tuple[str, Any]]:
    """Every controller, registered on `factory`'s shared informers (not yet running)."""
    return [
        ("replicaset", ReplicaSetController(client, factory)),
        ("deployment", DeploymentController(client, factory)),
        ("garbagecollector", GarbageCollectorController(client, factory)),
        ("namespace", NamespaceController(client, factory)),
        ("serviceaccount", ServiceAccountController(client, factory)),
        ("podgc", PodGCController(client, factory, terminated_pod_threshold=options.terminated_pod_threshold)),
        ("endpoints", EndpointsController(client, factory)),
        ("endpointslice", EndpointSliceController(client, factory)),
        ("servicelb", ServiceLBController(client, factory)),
        ("nodedns", NodeDnsController(client, factory)),
        ("nodelifecycle", NodeLifecycleController(
            client, factory, node_monitor_grace_period=options.node_monitor_grace_period,
            cluster_cidr=options.cluster_cidr, node_cidr_mask_size=options.node_cidr_mask_size)),
    ]


async def run_built(controllers: list[tuple[str, Any]], workers: int) -> None:
    """Run built controllers (their informers synced) until cancelled."""
    log.info("controller manager: starting %d controllers", len(controllers))
    tasks = [asyncio.create_task(c.run(workers), name=f"controller-{name}") for name, c in controllers]
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(tasks)


async def run_controllers(client: ApiClient, options: ControllerOptions) -> None:
    factory = InformerFactory(client, transforms={PODS: controller_view})
    controllers = build_controllers(client, factory, options)
    await factory.start()
    await factory.wait_synced(120)
    try:
        await run_built(controllers, options.workers)
    finally:
        await factory.stop()
