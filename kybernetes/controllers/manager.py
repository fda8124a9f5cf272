"""The controller manager: every controller of the cluster on shared informers.

`run_controllers` builds one informer factory for all controllers (one list +
watch per resource for the whole process), starts it, waits for the caches to
fill, then runs every controller until cancelled. `kyb controller-manager`
calls it under leader election.

Each controller is a `Runnable` with a worker pool of its own (its own queue and
`workers` tasks, as kube-controller-manager's --concurrent-*-syncs), so a controller
whose keys back off or pile up does not take workers from the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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


class Runnable(Protocol):
    """What the manager runs: `run` works with `workers` workers of its own until cancelled."""

    async def run(self, workers: int) -> None: ...


@dataclass(frozen=True)
class Managed:
    name: str
    runnable: Runnable


@dataclass
class ControllerOptions:
    node_monitor_grace_period: int = 40
    cluster_cidr: str = "10.42.0.0/16"
    node_cidr_mask_size: int = 24
    workers: int = 4
    # Workers of one controller by name, instead of `workers` (e.g. {"namespace": 8}).
    concurrent_syncs: dict[str, int] = field(default_factory=dict)
    terminated_pod_threshold: int = 12500

    def workers_for(self, name: str) -> int:
        return max(1, self.concurrent_syncs.get(name, self.workers))


def build_controllers(client: ApiClient, factory: InformerFactory,
                      options: ControllerOptions) -> list[Managed]:
    """Every controller, registered on `factory`'s shared informers (not yet running).
    Raises ValueError, before anything is built, when `options` names a controller that
    does not exist."""
    builders: list[tuple[str, Callable[[], Runnable]]] = [
        ("replicaset", lambda: ReplicaSetController(client, factory)),
        ("deployment", lambda: DeploymentController(client, factory)),
        ("garbagecollector", lambda: GarbageCollectorController(client, factory)),
        ("namespace", lambda: NamespaceController(client, factory)),
        ("serviceaccount", lambda: ServiceAccountController(client, factory)),
        ("podgc", lambda: PodGCController(client, factory,
                                          terminated_pod_threshold=options.terminated_pod_threshold)),
        ("endpoints", lambda: EndpointsController(client, factory)),
        ("endpointslice", lambda: EndpointSliceController(client, factory)),
        ("servicelb", lambda: ServiceLBController(client, factory)),
        ("nodedns", lambda: NodeDnsController(client, factory)),
        ("nodelifecycle", lambda: NodeLifecycleController(
            client, factory, node_monitor_grace_period=options.node_monitor_grace_period,
            cluster_cidr=options.cluster_cidr, node_cidr_mask_size=options.node_cidr_mask_size)),
    ]
    unknown = set(options.concurrent_syncs) - {name for name, _ in builders}
    if unknown:
        raise ValueError(f"no such controller: {', '.join(sorted(unknown))}")
    return [Managed(name, build()) for name, build in builders]


async def run_built(controllers: list[Managed], options: ControllerOptions) -> None:
    """Run built controllers (their informers synced) until cancelled, each with its own workers."""
    log.info("controller manager: starting %d controllers", len(controllers))
    tasks = [asyncio.create_task(m.runnable.run(options.workers_for(m.name)), name=f"controller-{m.name}")
             for m in controllers]
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
        await run_built(controllers, options)
    finally:
        await factory.stop()
