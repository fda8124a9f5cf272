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
from kybernetes.client import Client, InformerFactory, Informers
from kybernetes.client.resources import PODS
from kybernetes.controllers.bootstrapsigner import BootstrapSigner
from kybernetes.controllers.bootstraptokencleaner import TokenCleaner
from kybernetes.controllers.clusterroleaggregation import ClusterRoleAggregationController
from kybernetes.controllers.cronjob import CronJobController
from kybernetes.controllers.csrapproving import CSRApprovingController
from kybernetes.controllers.csrsigning import CSRSigningController
from kybernetes.controllers.daemonset import DaemonSetController
from kybernetes.controllers.deployment import DeploymentController
from kybernetes.controllers.disruption import DisruptionController
from kybernetes.controllers.endpoints import EndpointsController
from kybernetes.controllers.endpointslice import EndpointSliceController
from kybernetes.controllers.endpointslicemirroring import EndpointSliceMirroringController
from kybernetes.controllers.ephemeralvolume import EphemeralVolumeController
from kybernetes.controllers.garbagecollector import GarbageCollectorController
from kybernetes.controllers.job import JobController
from kybernetes.controllers.namespace import NamespaceController
from kybernetes.controllers.nodedns import NodeDnsController
from kybernetes.controllers.nodelifecycle import NodeLifecycleController
from kybernetes.controllers.podgc import PodGCController
from kybernetes.controllers.podutil import controller_view
from kybernetes.controllers.pvbinder import PersistentVolumeBinder
from kybernetes.controllers.pvprotection import PVCProtectionController, PVProtectionController
from kybernetes.controllers.replicaset import ReplicaSetController, ReplicationManager
from kybernetes.controllers.rootcacert import RootCACertPublisher
from kybernetes.controllers.satokens import FileSigner, TokensController
from kybernetes.controllers.serviceaccount import ServiceAccountController
from kybernetes.controllers.servicelb import ServiceLBController
from kybernetes.controllers.statefulset import StatefulSetController
from kybernetes.controllers.ttlafterfinished import TTLAfterFinishedController

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
    # The cluster CA bundle (PEM) published in every namespace (kube-controller-manager's
    # --root-ca-file); without it the root CA publisher does not run.
    root_ca_pem: str | None = None
    # The CA that signs approved kubernetes.io/kube-apiserver-client CSRs (kube-controller-manager's
    # --cluster-signing-cert-file/--cluster-signing-key-file); without it the signer does not run.
    cluster_signing_cert_file: str | None = None
    cluster_signing_key_file: str | None = None
    # The key that signs legacy ServiceAccount token Secrets (kube-controller-manager's
    # --service-account-private-key-file); without it the tokens controller does not run.
    service_account_private_key_file: str | None = None

    def workers_for(self, name: str) -> int:
        return max(1, self.concurrent_syncs.get(name, self.workers))


# A builder returns None when the controller cannot run with these options.
Builder = Callable[[Client, Informers, ControllerOptions], Runnable | None]

BUILDERS: tuple[tuple[str, Builder], ...] = (
    ("replicaset", lambda c, f, o: ReplicaSetController(c, f)),
    ("replicationmanager", lambda c, f, o: ReplicationManager(c, f)),
    ("deployment", lambda c, f, o: DeploymentController(c, f)),
    ("disruption", lambda c, f, o: DisruptionController(c, f)),
    ("cronjob", lambda c, f, o: CronJobController(c, f)),
    ("job", lambda c, f, o: JobController(c, f)),
    ("ttlafterfinished", lambda c, f, o: TTLAfterFinishedController(c, f)),
    ("daemonset", lambda c, f, o: DaemonSetController(c, f)),
    ("statefulset", lambda c, f, o: StatefulSetController(c, f)),
    ("garbagecollector", lambda c, f, o: GarbageCollectorController(c, f)),
    ("namespace", lambda c, f, o: NamespaceController(c, f)),
    ("serviceaccount", lambda c, f, o: ServiceAccountController(c, f)),
    ("serviceaccount-token", lambda c, f, o: TokensController(c, f, FileSigner(o.service_account_private_key_file),
                                                              o.root_ca_pem or "")
     if o.service_account_private_key_file else None),
    ("podgc", lambda c, f, o: PodGCController(c, f, terminated_pod_threshold=o.terminated_pod_threshold)),
    ("persistentvolume-binder", lambda c, f, o: PersistentVolumeBinder(c, f)),
    ("pvc-protection", lambda c, f, o: PVCProtectionController(c, f)),
    ("pv-protection", lambda c, f, o: PVProtectionController(c, f)),
    ("ephemeral-volume", lambda c, f, o: EphemeralVolumeController(c, f)),
    ("endpoints", lambda c, f, o: EndpointsController(c, f)),
    ("endpointslice", lambda c, f, o: EndpointSliceController(c, f)),
    ("endpointslicemirroring", lambda c, f, o: EndpointSliceMirroringController(c, f)),
    ("servicelb", lambda c, f, o: ServiceLBController(c, f)),
    ("nodedns", lambda c, f, o: NodeDnsController(c, f)),
    ("nodelifecycle", lambda c, f, o: NodeLifecycleController(
        c, f, node_monitor_grace_period=o.node_monitor_grace_period, cluster_cidr=o.cluster_cidr,
        node_cidr_mask_size=o.node_cidr_mask_size)),
    ("clusterrole-aggregation", lambda c, f, o: ClusterRoleAggregationController(c, f)),
    ("rootcacertpublisher", lambda c, f, o: RootCACertPublisher(c, f, o.root_ca_pem) if o.root_ca_pem else None),
    ("csrsigning", lambda c, f, o: CSRSigningController(c, f, o.cluster_signing_cert_file, o.cluster_signing_key_file)
     if o.cluster_signing_cert_file and o.cluster_signing_key_file else None),
    ("csrapproving", lambda c, f, o: CSRApprovingController(c, f)),
    ("tokencleaner", lambda c, f, o: TokenCleaner(c, f)),
    ("bootstrapsigner", lambda c, f, o: BootstrapSigner(c, f)),
)
CONTROLLER_NAMES = tuple(name for name, _ in BUILDERS)


def check_options(options: ControllerOptions) -> None:
    """Raises ValueError when `options` names a controller that does not exist."""
    unknown = set(options.concurrent_syncs) - set(CONTROLLER_NAMES)
    if unknown:
        raise ValueError(f"no such controller: {', '.join(sorted(unknown))} "
                         f"(controllers: {', '.join(CONTROLLER_NAMES)})")


def build_controllers(client: Client, factory: Informers,
                      options: ControllerOptions) -> list[Managed]:
    """Every controller, registered on `factory`'s shared informers (not yet running).
    Raises ValueError, before anything is built, for options naming no controller."""
    check_options(options)
    built = []
    for name, build in BUILDERS:
        runnable = build(client, factory, options)
        if runnable is None:
            log.warning("controller manager: %s not started: not configured", name)
            continue
        built.append(Managed(name, runnable))
    return built


async def run_built(controllers: list[Managed], options: ControllerOptions) -> None:
    """Run built controllers (their informers synced) until cancelled, each with its own workers."""
    log.info("controller manager: starting %d controllers", len(controllers))
    tasks = [asyncio.create_task(m.runnable.run(options.workers_for(m.name)), name=f"controller-{m.name}")
             for m in controllers]
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(tasks)


async def run_controllers(client: Client, options: ControllerOptions) -> None:
    factory = InformerFactory(client, transforms={PODS: controller_view})
    controllers = build_controllers(client, factory, options)
    await factory.start()
    await factory.wait_synced(120)
    try:
        await run_built(controllers, options)
    finally:
        await factory.stop()
