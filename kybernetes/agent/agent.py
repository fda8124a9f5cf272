"""The node agent's main loop: register the Node and keep its Lease and status fresh,
write the CNI network for its pod CIDR, watch the pods bound to it, and sync each pod
with the container runtime (decisions in `podsync`, CRI messages in `runtime`).

Containers are found again after a restart through the labels the agent puts on them,
so restarting the agent does not restart pods. A relist of the runtime every second
(like the kubelet's PLEG) notices containers that exited."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kybernetes.agent import admission, egress, etchosts, imagepull, logs, podspec, podsync, runtime, security
from kybernetes.agent import resize as node_resize
from kybernetes.agent.containerd import SANDBOX_IMAGE
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.client import TIMING, CriError
from kybernetes.agent.cri.protocol import Runtime
from kybernetes.agent.evictor import StorageEvictor
from kybernetes.agent.host import HostFacts, apparmor_enabled, disk_bytes, memory_available_bytes
from kybernetes.agent.localpath import LocalPathProvisioner
from kybernetes.agent.node import build_node, cni_conflist_bytes, node_resources, node_status
from kybernetes.agent.objectcache import ReferencedObjects
from kybernetes.agent.probes import (
    LIVENESS,
    READINESS,
    STARTUP,
    Prober,
    kill_grace,
    run_hook,
    run_probe,
    verdicts_kept_over_restart,
)
from kybernetes.agent.seccompfilters import SeccompFilters
from kybernetes.agent.stats import cgroup_dirs, memory_v1, memory_v2, parse_flat_keyed
from kybernetes.agent.statsreader import StatsReader
from kybernetes.agent.volumes import VolumeError, VolumeManager, container_mounts, readonly_volumes
from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.errors import ApiError
from kybernetes.api.nodegraph import same_pod_references
from kybernetes.api.pods import pod_is_ready, qos_class
from kybernetes.api.runtimeclass import handler_of as runtime_handler_of
from kybernetes.api.timefmt import parse_time, rfc3339, rfc3339_micro
from kybernetes.client import Client, InformerFactory, WorkQueue, object_key, run_workers
from kybernetes.client.nodes import LEASE_NAMESPACE, build_lease, lease_renewal
from kybernetes.client.resources import (
    CONFIGMAPS,
    LEASES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    RUNTIMECLASSES,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "kyb-agent"
STATUS_INTERVAL = 10.0
RELIST_INTERVAL = 1.0
# Every pod is synced again at most this long after its last sync, even if nothing changed
# (the kubelet's syncFrequency): tokens renewed, anything missed. A change to a pod's
# ConfigMaps and Secrets syncs it at once (objectcache), so its volumes need no round.
RESYNC_INTERVAL = 60.0
# How much earlier than that, at most, at random: pods started together drift apart.
RESYNC_JITTER = 0.25
# How soon a sandbox the runtime refused is tried again.
SANDBOX_RETRY_SECONDS = 10.0
# How long after a container's (or sandbox's) start the seccomp filter it was given is checked.
SECCOMP_CHECK_DELAY = 0.5
# A container's annotations: the node file its termination message is written to, and its policy.
TERMINATION_MESSAGE_FILE = "kybernetes.io/termination-message-file"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
# The kubelet puts no bound on a postStart hook; one that hangs here would hold a sync worker.
POST_START_TIMEOUT = 120.0


@dataclass
class AgentOptions:
    node_name: str
    data_dir: str
    cni_conf_dir: str
    workers: int = 4
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    bridge: str = "kyb0"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    # Renewed every quarter of it, like the kubelet (40 s: every 10 s).
    lease_duration: int = 40
    port: int = 10250
    # Sysctls (or prefix* patterns) pods may set beyond the safe set; each must be namespaced.
    allowed_unsafe_sysctls: tuple[str, ...] = ()
    # Where Localhost seccomp profiles are looked up (default: <data dir>/seccomp).
    seccomp_dir: str = ""
    # The pods' interface MTU: the VXLAN device's when the pod network crosses nodes on it.
    pod_mtu: int = 1500
    # The runtime's task bundles for Kubernetes' namespace (statsreader.StatsReader).
    runtime_task_dir: str = ""
    # crun's state dir for that namespace, and the CRI handlers that run crun ("" for the
    # default): containers there are handed the seccomp filters crun compiled for earlier
    # containers (seccompfilters).
    crun_state_dir: str = ""
    crun_handlers: tuple[str, ...] = ()
    # A private containerd's twin of each CRI handler for pods without host ports, whose
    # network (in this dir) lacks the portmap plugin. Empty for a containerd not ours: its
    # one network has portmap.
    nohostport_handlers: dict[str, str] = field(default_factory=dict)
    cni_nohostport_conf_dir: str = ""


async def wait_runtime_ready(cri: Runtime, timeout: float = 60.0) -> None:
    """Wait until the runtime answers CRI calls: a containerd that just started opens
    its socket before its CRI service is initialised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await cri.status()
            return
        except CriError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


class ImageNeverPullError(Exception):
    """The image is missing and imagePullPolicy is Never."""


class RuntimeClassError(Exception):
    """The pod's RuntimeClass cannot be found."""


class ImageBackOffError(Exception):
    """An earlier pull of the image failed; the next try waits (ImagePullBackOff)."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def _now() -> str:
    return rfc3339(dt.datetime.now(dt.UTC))


class Agent:
    def __init__(self, client: Client, cri: Runtime, host: HostFacts, options: AgentOptions) -> None:
        self.client = client
        self.cri = cri
        self.host = host
        self.options = options
        self.name = options.node_name
        # One reader, shared with the agent's API (stats/metrics) and the storage evictor.
        self.stats = StatsReader(cri, options.node_name, task_dir=options.runtime_task_dir)
        self.logs_root = os.path.join(options.data_dir, "pods-logs")
        # Whether the sandbox image was found (or pulled): looked up again only after a
        # sandbox failed, not before every pod's start.
        self._sandbox_image_present = False
        self.factory = InformerFactory(client)
        self.pods = self.factory.informer(PODS, field_selector=f"spec.nodeName={self.name}")
        # Service links for the pods' environments (shared with the proxy's informer).
        self.services = self.factory.informer(SERVICES)
        self.queue = WorkQueue("agent-pods")
        # The ConfigMaps and Secrets the pods name, watched one by one as the kubelet does.
        self.objects = ReferencedObjects(client, self.queue.add)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        # uid -> the resourceVersion this agent's last status write gave the pod
        self._own_status: dict[str, str] = {}
        self.runtime_version = ""
        self.node_uid = ""
        self._pod_cidr = ""
        self._uid_to_key: dict[str, str] = {}
        self._seen: dict[str, frozenset[tuple[str, int]]] = {}
        self._pull_failures: dict[str, tuple[int, float]] = {}  # image -> (failures, retry not before)
        self.probers: dict[tuple[str, str], Prober] = {}  # (container id, kind)
        self._prober_pod: dict[tuple[str, str], str] = {}  # (container id, kind) -> pod key
        self.probe_verdicts: dict[str, dict[str, bool]] = {}  # container id -> kind -> verdict
        self.started_at = time.time()
        # In-place resize: what the node allocated to each pod (by uid), checkpointed in the
        # data dir as the kubelet's allocation manager does, and what it says of pending resizes.
        self.allocations: dict[str, node_resize.Allocation] = {}
        self._allocation_dir = os.path.join(options.data_dir, "pod-resources")
        self._resize_pending: dict[str, tuple[str, str]] = {}
        self._resize_error: dict[str, str] = {}
        self._probe_session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # pod key -> the stop of a deleted pod whose readiness is probed while it runs
        self._terminations: dict[str, asyncio.Task[None]] = {}
        self.volumes = VolumeManager(os.path.join(options.data_dir, "pods"), self._fetch_source,
                                     node_resources(host)[1], token=self._request_token)
        # Told the node's pod CIDR once it is known (the service proxy's masquerade rule).
        self.pod_cidr_listeners: list[Callable[[str], None]] = []
        # Every node's pod CIDR (agent/overlay.py): pod traffic to them is not masqueraded.
        self.cluster_cidrs: list[str] = []
        self.seccomp_dir = options.seccomp_dir or os.path.join(options.data_dir, "seccomp")
        self.seccomp_filters = SeccompFilters(options.crun_state_dir, options.runtime_task_dir,
                                              frozenset(options.crun_handlers))
        # The Node as last read or written (labels, taints, allocatable for pod admission).
        self.node_obj: Obj | None = None
        # containerd 1.6 has neither user namespaces nor a Strict supplementalGroupsPolicy.
        self.features = admission.NodeFeatures(allowed_unsafe_sysctls=tuple(options.allowed_unsafe_sysctls),
                                               apparmor=apparmor_enabled())
        self.local_path = LocalPathProvisioner(client, self.factory, self.name, options.data_dir,
                                               on_claim=self._claim_changed)

    def _claim_changed(self, pvc: Obj) -> None:
        """A pod waiting for this claim to be bound mounts it as soon as it is, not at its
        next retry."""
        meta = pvc.get("metadata") or {}
        for pod in self.pods.list():
            if (pod.get("metadata") or {}).get("namespace") == meta.get("namespace") and any(
                    (v.get("persistentVolumeClaim") or {}).get("claimName") == meta.get("name")
                    for v in (pod.get("spec") or {}).get("volumes") or []):
                self.queue.add(object_key(pod))

    def _pod_added(self, pod: Obj) -> None:
        self.objects.set_pod(object_key(pod), pod)
        self._enqueue(pod)

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        if not same_pod_references(old, pod):
            self.objects.set_pod(object_key(pod), pod)
        meta = pod.get("metadata") or {}
        if meta.get("resourceVersion") and self._own_status.get(meta.get("uid") or "") == meta["resourceVersion"]:
            return  # the echo of this agent's own status write: nothing in it to act on
        self._enqueue(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        self.objects.set_pod(object_key(pod), None)
        self._own_status.pop((pod.get("metadata") or {}).get("uid") or "", None)
        self._enqueue(pod)

    def _enqueue(self, pod: Obj) -> None:
        key = object_key(pod)
        uid = (pod.get("metadata") or {}).get("uid")
        if uid:
            self._uid_to_key[uid] = key
        self.queue.add(key)

    # -- node -----------------------------------------------------------------------------------

    async def register(self) -> Obj:
        version = await self.cri.version()
        self.runtime_version = f"{version.runtime_name}://{version.runtime_version}"
        node = build_node(self.name, self.host, self.runtime_version, _now(), self.options.labels,
                          self.options.taints, self.options.port)
        try:
            created = await self.client.create(NODES, None, node, field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 409:
                raise
            created = await self.client.get(NODES, None, self.name)
            await self._post_status(created)
        self.node_uid = (created.get("metadata") or {}).get("uid", "")
        self.node_obj = created
        log.info("node %s registered (%s)", self.name, self.runtime_version)
        return created

    async def _post_status(self, node: Obj | None = None) -> Obj:
        if node is None:
            node = await self.client.get(NODES, None, self.name)
        previous = (node.get("status") or {}).get("conditions")
        ready, why = True, ""
        try:
            st = await self.cri.status()
            for cond in st.status.conditions:
                if not cond.status:
                    ready, why = False, f"container runtime {cond.type}: {cond.reason} {cond.message}".strip()
        except CriError as e:
            ready, why = False, f"container runtime is down: {e.details}"
        if not self._pod_cidr:
            ready, why = False, "network plugin not ready: no pod CIDR assigned to the node yet"
        _, free_disk = disk_bytes(self.options.data_dir)
        status = node_status(self.host, self.runtime_version, _now(), previous, ready=ready, not_ready_message=why,
                             memory_pressure=memory_available_bytes() < 100 * 1024 * 1024,
                             disk_pressure=free_disk < self.host.storage_bytes // 10, port=self.options.port)
        return await self.client.patch(NODES, None, self.name, {"status": status}, patch_type="strategic",
                                       subresource="status", field_manager=FIELD_MANAGER)

    async def _lease_loop(self) -> None:
        while True:
            now = rfc3339_micro(dt.datetime.now(dt.UTC))
            try:
                await self.client.patch(LEASES, LEASE_NAMESPACE, self.name,
                                        lease_renewal(self.name, now, self.options.lease_duration),
                                        patch_type="merge", field_manager=FIELD_MANAGER)
            except ApiError as e:
                if e.code == 404:
                    try:
                        await self.client.create(LEASES, LEASE_NAMESPACE,
                                                 build_lease(self.name, self.node_uid, now, self.options.lease_duration),
                                                 field_manager=FIELD_MANAGER)
                    except ApiError as e2:
                        log.warning("lease create failed: %s", e2)
                else:
                    log.warning("lease renewal failed: %s", e)
            except Exception as e:  # noqa: BLE001 - keep heartbeating
                log.warning("lease renewal failed: %s", e)
            await asyncio.sleep(max(self.options.lease_duration / 4, 0.5))

    async def _status_loop(self) -> None:
        while True:
            try:
                node = await self.client.get(NODES, None, self.name)
                await self._ensure_network(node)
                self.node_obj = await self._post_status(node)
            except Exception as e:  # noqa: BLE001 - keep reporting
                log.warning("node status update failed: %s", e)
            await asyncio.sleep(STATUS_INTERVAL if self._pod_cidr else 1.0)

    async def _ensure_network(self, node: Obj) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if not cidr or cidr == self._pod_cidr:
            return
        # One masquerade rule for the node instead of the bridge plugin's chain per pod.
        per_pod_masq = True
        if egress.available():
            try:
                await egress.apply(egress.masquerade_script(egress.table_name(self.options.bridge), cidr,
                                                            self.cluster_cidrs))
                per_pod_masq = False
            except (OSError, RuntimeError, ValueError) as e:
                log.warning("pods' egress masquerade falls back to the CNI plugin's per-pod rules: %s", e)
        for conf_dir, portmap in ((self.options.cni_conf_dir, True), (self.options.cni_nohostport_conf_dir, False)):
            if not conf_dir:
                continue
            os.makedirs(conf_dir, exist_ok=True)
            path = os.path.join(conf_dir, "10-kybernetes.conflist")
            with open(path + ".tmp", "wb") as f:
                f.write(cni_conflist_bytes(cidr, os.path.join(self.options.data_dir, "cni-ipam"), self.options.bridge,
                                           ip_masq=per_pod_masq, mtu=self.options.pod_mtu, portmap=portmap))
            os.replace(path + ".tmp", path)
        self._pod_cidr = cidr
        for listener in self.pod_cidr_listeners:
            listener(cidr)
        log.info("pod network %s written to %s", cidr, self.options.cni_conf_dir)

    async def set_cluster_cidrs(self, cidrs: list[str]) -> None:
        """The pod network spans these CIDRs now: the egress rule leaves traffic to them alone."""
        self.cluster_cidrs = list(cidrs)
        if self._pod_cidr and egress.available():
            await egress.apply(egress.masquerade_script(egress.table_name(self.options.bridge), self._pod_cidr,
                                                        self.cluster_cidrs))

    # -- pods -------------------------------------------------------------------------------------

    async def _relist_loop(self) -> None:
        """Enqueue pods whose containers changed state in the runtime, and pods the
        runtime still runs that the API no longer has."""
        while True:
            try:
                containers = await self.cri.list_containers()
                sandboxes = await self.cri.list_pod_sandboxes()
                # Which sandboxes and containers each pod has and their states: a
                # container that started and exited between two relists still shows.
                current: dict[str, frozenset[tuple[str, int]]] = {}
                for item in [*sandboxes, *containers]:
                    uid = runtime.pod_uid_of(dict(item.labels))
                    if uid:
                        current[uid] = current.get(uid, frozenset()) | {(item.id, item.state)}
                for uid, sig in current.items():
                    if self._seen.get(uid) != sig:
                        self.queue.add(self._uid_to_key.get(uid) or f"uid:{uid}")
                self._seen = current
            except CriError as e:
                log.warning("runtime relist failed: %s", e)
            await asyncio.sleep(RELIST_INTERVAL)

    async def _runtime_state(self, uid: str) -> tuple[podsync.SandboxState | None, list[podsync.ContainerState],
                                                       list[str]]:
        """The pod's newest sandbox, its containers, and the ids of older sandboxes."""
        sandboxes = await self.cri.list_pod_sandboxes(label_selector={podspec.POD_UID: uid})
        sandboxes.sort(key=lambda s: (s.metadata.attempt, s.created_at), reverse=True)
        if not sandboxes:
            return None, [], []
        newest = sandboxes[0]
        # The calls of one read go out together: a sync holds a starting pod's runtime
        # calls up for one round trip, not one per container.
        status, listed = await asyncio.gather(self.cri.pod_sandbox_status(newest.id),
                                              self.cri.list_containers(sandbox_id=newest.id))
        containers = await self._container_states([c.id for c in listed])
        return runtime.sandbox_state(status.status), containers, [s.id for s in sandboxes[1:]]

    async def _container_states(self, ids: list[str]) -> list[podsync.ContainerState]:
        """The states of the containers `ids` that still exist, read at once."""
        states = await asyncio.gather(*(self._container_state(cid) for cid in ids))
        return [s for s in states if s is not None]

    async def _container_state(self, cid: str) -> podsync.ContainerState | None:
        try:
            status = (await self.cri.container_status(cid)).status
        except CriError as e:
            if not e.not_found:
                raise
            return None
        state = runtime.container_state(status)
        message_file = status.annotations.get(TERMINATION_MESSAGE_FILE)
        if state.state == podsync.EXITED and not state.message and message_file:
            state = dataclasses.replace(state, message=await asyncio.to_thread(
                logs.read_termination_message, message_file,
                status.annotations.get(TERMINATION_MESSAGE_POLICY, ""), state.exit_code, status.log_path))
        return state

    async def sync(self, key: str) -> None:
        if TIMING:
            log.warning("sync %s", key)
        try:
            await self._sync(key)
        finally:
            ns, _, name = key.rpartition("/")
            if not key.startswith("uid:") and self.pods.get(ns or None, name) is not None:
                # Each pod on its own clock (as the kubelet's pod workers), not all at once:
                # a node-wide round of syncs would hold up the pods starting meanwhile.
                self.queue.add_after(key, resync_delay(random.random()))

    async def _sync(self, key: str) -> None:
        if key.startswith("uid:"):
            await self._kill_runtime_pod(key[4:])
            return
        ns, _, name = key.rpartition("/")
        pod = self.pods.get(ns or None, name)
        if pod is None:
            uid = next((u for u, k in self._uid_to_key.items() if k == key), "")
            if uid:
                await self._kill_runtime_pod(uid)
                self._uid_to_key.pop(uid, None)
            return
        uid = pod["metadata"].get("uid", "")
        sandbox, containers, stale = await self._runtime_state(uid)
        for sid in stale:
            await self._remove_sandbox(sid)
        if sandbox is None and not containers and not pod["metadata"].get("deletionTimestamp"):
            phase = (pod.get("status") or {}).get("phase") or "Pending"
            if phase in ("Succeeded", "Failed"):
                return  # finished, nothing of it left to stop or report
            rejection = await self._admit(pod) if phase == "Pending" else None
            if rejection is not None:
                await self._reject(pod, rejection)
                return
        plan = podsync.plan_pod(pod, sandbox, containers, time.time(), self._sidecars_started(pod, containers))
        if not plan.kill_pod:
            await self._resize(pod, containers, plan)
        if plan.kill_pod and key in self._terminations:
            await self._report(pod, sandbox, containers, plan)
            return
        if plan.kill_pod and podsync.probes_readiness_while_terminating(pod, containers):
            # As the kubelet: a deleted pod's readiness is still probed during its grace
            # period (Ready turns False when the probe fails, and Services stop sending to it);
            # its liveness and startup probes stop. Syncs meanwhile only report.
            self._stop_probers(key, kinds=(LIVENESS, STARTUP))
            self._terminations[key] = self._spawn(self._terminate(key, pod, sandbox, containers))
            await self._report(pod, sandbox, containers, plan)
            return
        if plan.kill_pod:
            self._stop_probers(key)
            if plan.deadline_exceeded:
                self._event(pod, "", "Normal", "DeadlineExceeded",
                            "Pod was active on the node longer than the specified deadline")
            await self._kill_pod(pod, sandbox, containers)
            if pod["metadata"].get("deletionTimestamp"):
                await self._report_final(pod)
                await self._finish_delete(pod)
                return
            sandbox, containers, _ = await self._runtime_state(uid)
        else:
            sandbox, containers = await self._apply(pod, plan, sandbox, containers)
            # A sidecar with no startupProbe has started once it runs: what follows it
            # starts in this same sync rather than at the next relist.
            for _ in (pod.get("spec") or {}).get("initContainers") or []:
                if plan.waiting or not any(init and podsync.is_sidecar(c) and not c.get("startupProbe")
                                           for c, init, _n in plan.start):
                    break
                plan = podsync.plan_pod(pod, sandbox, containers, time.time(),
                                        self._sidecars_started(pod, containers))
                if plan.kill_pod or plan.new_sandbox or not (plan.start or plan.remove):
                    break  # (what followed the sidecar was started with it: nothing left to do)
                sandbox, containers = await self._apply(pod, plan, sandbox, containers)
        for name, (reason, _message) in plan.waiting.items():
            if reason == "CrashLoopBackOff":
                self._event(pod, name, "Warning", "BackOff", f"Back-off restarting failed container {name} in pod "
                            f"{pod['metadata'].get('name')}_{pod['metadata'].get('namespace')}"
                            f"({pod['metadata'].get('uid')})")
        await self._report(pod, sandbox, containers, plan)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    # -- in-place resize ------------------------------------------------------------------------------

    def _load_allocation(self, uid: str) -> node_resize.Allocation | None:
        try:
            with open(os.path.join(self._allocation_dir, uid + ".json")) as f:
                return node_resize.Allocation.loads(f.read())
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def _save_allocation(self, uid: str, text: str) -> None:
        os.makedirs(self._allocation_dir, exist_ok=True)
        path = os.path.join(self._allocation_dir, uid + ".json")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    async def _forget_allocation(self, uid: str) -> None:
        self.allocations.pop(uid, None)
        self._resize_pending.pop(uid, None)
        self._resize_error.pop(uid, None)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.remove, os.path.join(self._allocation_dir, uid + ".json"))
        # The pod's room is free: resizes deferred for want of it are tried again now.
        for waiting, (reason, _message) in self._resize_pending.items():
            if reason == node_resize.DEFERRED and (key := self._uid_to_key.get(waiting)):
                self.queue.add(key)

    def _others_requests(self, uid: str) -> dict[str, int]:
        """cpu and memory the node's other running pods hold (their allocations where known)."""
        total = {n: 0 for n in node_resize.RESIZABLE}
        for other in self.pods.list():
            other_uid = other["metadata"].get("uid", "")
            if other_uid == uid or (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            held = self.allocations.get(other_uid)
            for n, v in node_resize.pod_requests(other, held.resources if held else {}).items():
                total[n] += v
        return total

    async def _memory_usage(self, cid: str) -> int | None:
        """The container's memory working set as its cgroup counts it, or None."""
        try:
            info = (await self.cri.container_status(cid, verbose=True)).info
            pid = int(json.loads(info.get("info", "{}")).get("pid") or 0)
        except (CriError, ValueError, TypeError, AttributeError):
            return None
        return await asyncio.to_thread(memory_working_set, pid) if pid else None

    async def _resize(self, pod: Obj, containers: list[podsync.ContainerState], plan: podsync.Plan) -> None:
        """In-place resize (decisions in agent/resize.py): admit the pod's new resources if
        the node has room, then give each running container its allocation through CRI
        UpdateContainerResources, or restart it where its resizePolicy says so."""
        uid = pod["metadata"].get("uid", "")
        allocation = self.allocations.get(uid)
        changed = False
        if allocation is None:
            allocation = await asyncio.to_thread(self._load_allocation, uid)
            if allocation is None:
                allocation, changed = node_resize.Allocation(node_resize.desired(pod)), True
            self.allocations[uid] = allocation
        latest = podsync.latest_by_name(containers)
        running = [(c.name, c.id) for c in latest.values() if c.state == podsync.RUNNING and not c.ephemeral]
        # A container seen running for the first time was started from the allocation.
        for name, cid in running:
            res = allocation.resources.get(name)
            if res is not None and cid not in allocation.applied:
                allocation.applied[cid], changed = node_resize.linux_of(res), True
                allocation.actuated[name] = res
        live = {c.id for c in containers}
        for cid in [k for k in allocation.applied if k not in live]:
            del allocation.applied[cid]
            changed = True
        # The other pods are only summed when there is a resize to admit (a sync per pod start).
        others = self._others_requests(uid) if node_resize.pending_resize(pod, allocation) else {}
        decision = node_resize.admit(pod, allocation, node_resources(self.host)[1], others)
        if decision.allocate is not None:
            allocation.resources, changed = decision.allocate, True
        if decision.pending is not None:
            self._resize_pending[uid] = decision.pending
        else:
            self._resize_pending.pop(uid, None)
        errors = []
        by_name = {c.get("name", ""): c for c in node_resize.resizable(pod)}
        grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        for action in node_resize.actions(pod, allocation, running):
            changed = True
            if action.restart:
                await self._stop_container(action.container_id, grace)
                del allocation.applied[action.container_id]
                container = by_name[action.name]
                plan.start.append((container, node_resize.is_sidecar(container),
                                   latest[action.name].restart_count + 1))
                continue
            applied = allocation.applied[action.container_id]
            usage = await self._memory_usage(action.container_id) if action.linux[3] else None
            if too_low := node_resize.memory_below_usage(action, applied, usage):
                errors.append(too_low)
                plan.requeue_after = min(plan.requeue_after or 5.0, 5.0)
                continue
            shares, quota, period, memory = action.linux
            try:
                await self.cri.update_container_resources(action.container_id, pb.LinuxContainerResources(
                    cpu_shares=shares, cpu_quota=quota, cpu_period=period, memory_limit_in_bytes=memory))
                allocation.applied[action.container_id] = action.linux
                allocation.actuated[action.name] = allocation.resources[action.name]
            except CriError as e:
                errors.append(f"failed to update resources of container {action.name}: {e.details}")
                plan.requeue_after = min(plan.requeue_after or 5.0, 5.0)
        if errors:
            self._resize_error[uid] = "; ".join(errors)
        else:
            self._resize_error.pop(uid, None)
        if changed:
            await asyncio.to_thread(self._save_allocation, uid, allocation.dumps())

    async def _apply(self, pod: Obj, plan: podsync.Plan, sandbox: podsync.SandboxState | None,
                     containers: list[podsync.ContainerState]) -> tuple[podsync.SandboxState | None,
                                                                        list[podsync.ContainerState]]:
        attempt = (sandbox.attempt + 1) if sandbox is not None else 0
        for cid in plan.remove:
            await self._remove_container(cid)
        sb_spec = podspec.sandbox_spec(pod, self.logs_root, attempt, self._dns(pod), self.seccomp_dir,
                                       self.options.cluster_domain)
        sb_config = runtime.sandbox_config(sb_spec)
        early_volumes: asyncio.Task[dict[str, str]] | None = None
        if plan.new_sandbox:
            if sandbox is not None:
                await self._remove_sandbox(sandbox.id)
            os.makedirs(sb_spec.log_directory, exist_ok=True)
            # The volumes are set up while the runtime makes the sandbox (CNI, pause
            # container): a pod's start does not wait for the two in turn. Unlike the
            # kubelet, a pod whose volume fails holds its sandbox (and IP) meanwhile.
            early_volumes = asyncio.create_task(self.volumes.setup(pod))
            if not self._sandbox_image_present:
                if await self.cri.image_status(SANDBOX_IMAGE) is None:
                    await self.cri.pull_image(SANDBOX_IMAGE)
                self._sandbox_image_present = True
            try:
                if not sb_spec.host_network:
                    podspec.check_hostname(sb_spec.hostname)
                handler = await self._runtime_handler(pod)
                if not sb_config.port_mappings:
                    handler = self.options.nohostport_handlers.get(handler, handler)
                run_config = self.seccomp_filters.annotate_sandbox(sb_config, handler)
                sid = await self.cri.run_pod_sandbox(run_config, handler)
            except (CriError, RuntimeClassError, podspec.HostnameError) as e:
                # As the kubelet: the pod waits in ContainerCreating and the sandbox is tried again.
                why = imagepull.rpc_error(e.code, e.details) if isinstance(e, CriError) else str(e)
                self._sandbox_image_present = False
                self._event(pod, "", "Warning", "FailedCreatePodSandBox", imagepull.sandbox_failed_message(why))
                plan.start = []
                plan.requeue_after = SANDBOX_RETRY_SECONDS
                await asyncio.gather(early_volumes, return_exceptions=True)
                return None, containers
            self.seccomp_filters.created(sid, run_config, handler)
            if self.seccomp_filters.to_check(sid):
                self._spawn(self._check_seccomp_filter(pod, sid, sandbox=True))
            # A new sandbox has no containers yet: its status is all there is to read.
            sandbox, containers = runtime.sandbox_state((await self.cri.pod_sandbox_status(sid)).status), []
        if sandbox is None:
            if early_volumes is not None:
                await asyncio.gather(early_volumes, return_exceptions=True)
            return None, containers
        sb_spec.attempt = sandbox.attempt
        sb_config = runtime.sandbox_config(sb_spec)
        try:
            # Every sync refreshes projected files (a changed ConfigMap or Secret shows
            # in running containers); unchanged volumes are left as they are.
            volume_paths = await (early_volumes if early_volumes is not None else self.volumes.setup(pod))
            hosts_file = await asyncio.to_thread(self._hosts_file, pod, sandbox)
        except VolumeError as e:
            self._event(pod, "", "Warning", "FailedMount", str(e))
            for container, _init, _restarts in plan.start:
                plan.waiting[container.get("name", "")] = ("ContainerCreating", str(e))
            plan.start = []
            plan.requeue_after = 2.0
            return sandbox, containers
        started = False
        made_here: list[str] = []  # the containers this sync created (and did not remove again)
        todo = list(plan.start)
        planned = {c.get("name", "") for c, _init, _restarts in todo}
        running = list(containers)  # and those this sync started: what the followers are planned from
        created: dict[str, str] = {}  # a follower's container, created while its sidecar started ("": failed)
        while todo:
            container, init, restarts = todo.pop(0)
            name = container.get("name", "")
            if name in created:
                cid = created.pop(name)
                if not cid:
                    continue
            else:
                config = await self._container_config(pod, plan, container, init, restarts, sandbox, running,
                                                      volume_paths, hosts_file, sb_spec.log_directory)
                if config is None:
                    continue
                try:
                    cid = await self._create_container(sandbox, config, sb_config)
                except CriError as e:
                    self._run_failed(pod, plan, name, e)
                    continue
                made_here.append(cid)
            self._event(pod, name, "Normal", "Created", f"Created container {name}")
            now = time.time()
            starting = podsync.ContainerState(cid, name, podsync.RUNNING, restarts, podsync.spec_hash(container),
                                              init=init, created_at=now)
            follow = podsync.followers(pod, sandbox, running, container, starting, now,
                                       self._sidecars_started(pod, running), planned) if init else []
            made: dict[str, str] = {}
            start_error, made_error = await asyncio.gather(
                self.cri.start_container(cid),
                self._create_followers(pod, plan, follow, sandbox, [*running, starting], volume_paths, hosts_file,
                                       sb_spec.log_directory, sb_config, made),
                return_exceptions=True)
            if start_error is not None:
                self.seccomp_filters.forget(cid)
            elif self.seccomp_filters.to_check(cid):
                self._spawn(self._check_seccomp_filter(pod, cid))
            if start_error is not None or made_error is not None:
                # Nothing created ahead may outlive a sidecar that did not start.
                for follower in made.values():
                    if follower:
                        await self._remove_container(follower)
                for f, _init, _restarts in follow:
                    plan.waiting.pop(f.get("name", ""), None)
                made = {}
            if isinstance(start_error, CriError):
                self._run_failed(pod, plan, name, start_error)
                continue
            if start_error is not None:
                raise start_error
            self._event(pod, name, "Normal", "Started", f"Started container {name}")
            started = True
            running.append(starting)
            if made_error is not None:
                raise made_error
            created.update(made)
            made_here += [follower for follower in made.values() if follower]
            todo += follow
            planned |= set(made)
            hook = (container.get("lifecycle") or {}).get("postStart")
            if hook:
                await self._post_start(pod, podsync.ContainerState(cid, name, podsync.RUNNING, restarts, ""),
                                       container, hook, sandbox, plan)
        if started or plan.remove:
            # Only what this sync created or removed has changed in the runtime (the relist
            # catches the rest): the others are not read again before the status goes out.
            gone = set(plan.remove)
            containers = [c for c in containers if c.id not in gone] + await self._container_states(made_here)
        return sandbox, containers

    def _run_failed(self, pod: Obj, plan: podsync.Plan, name: str, e: CriError) -> None:
        self._event(pod, name, "Warning", "Failed", f"Error: {e.details}")
        plan.waiting[name] = ("RunContainerError", e.details)
        plan.requeue_after = 5.0

    async def _create_followers(self, pod: Obj, plan: podsync.Plan, follow: list[tuple[Obj, bool, int]],
                                sandbox: podsync.SandboxState, running: list[podsync.ContainerState],
                                volume_paths: dict[str, str], hosts_file: str, log_directory: str,
                                sb_config: pb.PodSandboxConfig, made: dict[str, str]) -> None:
        """Create (not start) the containers that follow a starting sidecar, into `made` by
        name ("" for one that could not be)."""
        for container, init, restarts in follow:
            name = container.get("name", "")
            made[name] = ""
            config = await self._container_config(pod, plan, container, init, restarts, sandbox, running,
                                                  volume_paths, hosts_file, log_directory)
            if config is None:
                continue
            try:
                made[name] = await self._create_container(sandbox, config, sb_config)
            except CriError as e:
                self._run_failed(pod, plan, name, e)

    async def _create_container(self, sandbox: podsync.SandboxState, config: pb.ContainerConfig,
                                sb_config: pb.PodSandboxConfig) -> str:
        """The id of the container created from `config`, noted for its seccomp check."""
        cid = await self.cri.create_container(sandbox.id, config, sb_config)
        self.seccomp_filters.created(cid, config, sandbox.runtime_handler)
        return cid

    async def _container_config(self, pod: Obj, plan: podsync.Plan, container: Obj, init: bool, restarts: int,
                                sandbox: podsync.SandboxState, containers: list[podsync.ContainerState],
                                volume_paths: dict[str, str], hosts_file: str,
                                log_directory: str) -> pb.ContainerConfig | None:
        """The CRI config of `container`, its image ensured; None when it cannot be made
        (the reason is in `plan.waiting`)."""
        uid = pod["metadata"].get("uid", "")
        name = container.get("name", "")
        try:
            await self._ensure_image(pod, name, container.get("image", ""), container.get("imagePullPolicy") or "")
            env = await self._env(pod, container, sandbox)
            mounts = [(m.container_path, m.host_path, m.readonly)
                      for m in container_mounts(container, volume_paths, readonly_volumes(pod), dict(env))]
            if hosts_file and not etchosts.mounts_own_hosts(container):
                mounts.append((etchosts.HOSTS_PATH, hosts_file, False))
            security.check_container(pod, container, self.seccomp_dir)
            if security.needs_image_user(pod, container):
                image = await self.cri.image_status(container.get("image", ""))
                security.verify_run_as_non_root(
                    pod, container, image.uid.value if image is not None and image.HasField("uid") else None,
                    image.username if image is not None else "")
        except (podspec.EnvError, VolumeError, security.SecurityContextError) as e:
            self._event(pod, name, "Warning", "Failed", f"Error: {e}")
            plan.waiting[name] = ("CreateContainerConfigError", str(e))
            plan.requeue_after = 2.0
            return None
        except ImageNeverPullError as e:
            plan.waiting[name] = ("ErrImageNeverPull", str(e))
            plan.requeue_after = 5.0
            return None
        except ImageBackOffError as e:
            self._event(pod, name, "Normal", "BackOff", str(e))
            plan.waiting[name] = ("ImagePullBackOff", str(e))
            plan.requeue_after = min(plan.requeue_after or e.retry_in, e.retry_in)
            return None
        except CriError as e:
            image = container.get("image", "")
            failures = self._pull_failures.get(image, (0, 0.0))[0] + 1
            delay = podsync.backoff_seconds(failures)
            self._pull_failures[image] = (failures, time.monotonic() + delay)
            self._event(pod, name, "Warning", "Failed", f'Failed to pull image "{image}": {e.details}')
            self._event(pod, name, "Warning", "Failed", "Error: ErrImagePull")
            plan.waiting[name] = ("ErrImagePull", e.details)
            # Look again soon: until the retry, the pod says ImagePullBackOff.
            plan.requeue_after = min(1.0, delay)
            return None
        message_path = container.get("terminationMessagePath") or ""
        message_file = ""
        if message_path:
            message_file = await asyncio.to_thread(logs.make_termination_file, self.volumes.pod_dir(uid), name)
            mounts.append((message_path, message_file, False))
        cspec = podspec.container_spec(pod, node_resize.with_allocated(container, self.allocations.get(uid)), env,
                                       restarts, podsync.spec_hash(container), init, mounts, self.seccomp_dir)
        cspec.pid_target_id = podsync.pid_target(container, containers)
        if message_file:
            # Where to read the message once the container has exited (after a restart of the agent too).
            cspec.annotations[TERMINATION_MESSAGE_FILE] = message_file
            cspec.annotations[TERMINATION_MESSAGE_POLICY] = container.get("terminationMessagePolicy") or "File"
        os.makedirs(os.path.join(log_directory, name), exist_ok=True)
        config = runtime.container_config(cspec, bool((pod.get("spec") or {}).get("hostNetwork")))
        self.seccomp_filters.annotate(config, sandbox.runtime_handler)
        return config

    async def _runtime_handler(self, pod: Obj) -> str:
        """The CRI handler of the pod's RuntimeClass ("" without one: the runtime's default)."""
        name = (pod.get("spec") or {}).get("runtimeClassName")
        if not name:
            return ""
        try:
            return runtime_handler_of(await self.client.get(RUNTIMECLASSES, None, name))
        except ApiError as e:
            if e.code == 404:
                raise RuntimeClassError(f'RuntimeClass "{name}" not found') from e
            raise

    async def _ensure_image(self, pod: Obj, container: str, image: str, policy: str = "") -> None:
        """The kubelet's EnsureImageExists: see `imagepull` for the rules."""
        if not image:
            return
        policy = imagepull.effective_policy(image, policy)
        present = await self.cri.image_status(image) is not None
        if not imagepull.should_pull(policy, present):
            if present:
                self._event(pod, container, "Normal", "Pulled", imagepull.present_message(image))
                return
            self._event(pod, container, "Warning", "ErrImageNeverPull", imagepull.never_pull_message(image))
            raise ImageNeverPullError(imagepull.never_pull_message(image))
        failed = self._pull_failures.get(image)
        if failed is not None and time.monotonic() < failed[1]:
            raise ImageBackOffError(imagepull.back_off_message(image), failed[1] - time.monotonic())
        await self._pull(pod, container, image)

    async def _pull(self, pod: Obj, container: str, image: str) -> None:
        self._event(pod, container, "Normal", "Pulling", f'Pulling image "{image}"')
        t = time.monotonic()
        await self.cri.pull_image(image, await self._pull_auth(pod, image))
        took = time.monotonic() - t
        self._pull_failures.pop(image, None)
        pulled = await self.cri.image_status(image)
        self._event(pod, container, "Normal", "Pulled",
                    imagepull.pulled_message(image, took, took, pulled.size if pulled is not None else 0))

    async def _pull_auth(self, pod: Obj, image: str) -> pb.AuthConfig | None:
        """Credentials for the image's registry from the pod's imagePullSecrets."""
        ns = pod["metadata"].get("namespace", "")
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self._fetch_source("Secret", ns, ref.get("name", ""))
            if secret is None:
                continue
            found = pull_credentials(secret, image_registry(image))
            if found is not None:
                user, password, server = found
                # containerd matches the address as a URL's host part.
                return pb.AuthConfig(username=user, password=password, server_address=f"https://{server}")
        return None

    def _pod_ips(self, pod: Obj, sandbox: podsync.SandboxState | None) -> list[str]:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return [self.host.internal_ip]
        if sandbox is None or not sandbox.ip:
            return []
        return [sandbox.ip] + [ip for ip in sandbox.ips if ip != sandbox.ip]

    def _hosts_file(self, pod: Obj, sandbox: podsync.SandboxState | None) -> str:
        """The pod's managed /etc/hosts (written once its IPs are known), or "" before."""
        ips = self._pod_ips(pod, sandbox)
        if not ips:
            return ""
        node_hosts = ""
        if (pod.get("spec") or {}).get("hostNetwork"):
            try:
                with open(etchosts.HOSTS_PATH) as f:
                    node_hosts = f.read()
            except OSError:
                node_hosts = ""
        content = etchosts.hosts_content(pod, ips, self.options.cluster_domain, node_hosts)
        return etchosts.write_hosts_file(self.volumes.pod_dir(pod["metadata"].get("uid", "")), content)

    async def _env(self, pod: Obj, container: Obj,
                   sandbox: podsync.SandboxState | None = None) -> list[tuple[str, str]]:
        """The container's environment, built after its sandbox is up as the kubelet does,
        so status.podIP(s) read the sandbox's IPs."""
        ns = pod["metadata"].get("namespace", "")
        found: dict[str, dict[str, Obj]] = {"ConfigMap": {}, "Secret": {}}
        refs = [(v.get("valueFrom") or {}) for v in container.get("env") or []] + list(container.get("envFrom") or [])
        for ref in refs:
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret"),
                              ("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                name = (ref.get(key) or {}).get("name")
                if name and name not in found[kind]:
                    obj = await self._fetch_source(kind, ns, name)
                    if obj is not None:
                        found[kind][name] = obj
        _, allocatable = node_resources(self.host)
        spec = pod.get("spec") or {}
        links = podspec.service_link_env(self.services.list(), ns, spec.get("enableServiceLinks") is not False)
        view = podspec.with_runtime_ips(pod, self._pod_ips(pod, sandbox), [self.host.internal_ip])
        skipped: list[tuple[str, str, list[str]]] = []
        env = podspec.container_env(view, container, found["ConfigMap"], found["Secret"], allocatable, links,
                                    skipped)
        for kind, name, keys in skipped:
            self._event(pod, container.get("name", ""), "Warning", "InvalidEnvironmentVariableNames",
                        f"Keys [{', '.join(keys)}] from the EnvFrom {kind.lower()} {ns}/{name} were skipped "
                        "since they are considered invalid environment variable names.")
        return env

    async def _request_token(self, pod: Obj, audience: str, seconds: int) -> tuple[str, float]:
        """A token of the pod's ServiceAccount bound to the pod (TokenRequest), for a
        projected serviceAccountToken source."""
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience] if audience else [], "expirationSeconds": seconds,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name", ""),
                                            "uid": meta.get("uid", "")}}}
        try:
            out = await self.client.create_subresource(
                SERVICEACCOUNTS, meta.get("namespace"), spec.get("serviceAccountName") or "default", "token", body)
        except ApiError as e:
            raise VolumeError(f"failed to fetch token: {e}") from None
        status = out.get("status") or {}
        expires = parse_time(status.get("expirationTimestamp"))
        if not status.get("token") or expires is None:
            raise VolumeError("failed to fetch token: the answer holds no token")
        return status["token"], expires.timestamp()

    async def _fetch_source(self, kind: str, ns: str, name: str) -> Obj | None:
        known, obj = self.objects.get(kind, ns, name)
        if known:
            return obj
        if kind in ("PersistentVolumeClaim", "PersistentVolume"):
            cache = self.local_path.claims if kind == "PersistentVolumeClaim" else self.local_path.volumes
            cached = cache.get(ns or None, name)
            # The informer may lag a bind that just happened; the server has the last word.
            if cached is not None and (kind == "PersistentVolume" or cached.get("status", {}).get("phase") == "Bound"):
                return cached
        resources = {"ConfigMap": CONFIGMAPS, "Secret": SECRETS, "PersistentVolumeClaim": PERSISTENTVOLUMECLAIMS,
                     "PersistentVolume": PERSISTENTVOLUMES}
        try:
            return await self.client.get(resources[kind], ns or None, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def _dns(self, pod: Obj) -> podspec.DnsSettings:
        try:
            with open("/etc/resolv.conf") as f:
                host = podspec.read_resolv_conf(f.read())
        except OSError:
            host = ([], [], [])
        return podspec.pod_dns(pod, list(self.options.cluster_dns), self.options.cluster_domain, host)

    async def _remove_container(self, cid: str) -> None:
        self.seccomp_filters.forget(cid)
        try:
            await self.cri.remove_container(cid)
        except CriError as e:
            if not e.not_found:
                raise

    async def _remove_sandbox(self, sid: str) -> None:
        for op in (self.cri.stop_pod_sandbox, self.cri.remove_pod_sandbox):
            try:
                await op(sid)
            except CriError as e:
                if not e.not_found:
                    raise

    async def _kill_pod(self, pod: Obj | None, sandbox: podsync.SandboxState | None,
                        containers: list[podsync.ContainerState]) -> None:
        """Stop the pod's containers within its grace period, then its sandbox. As the
        kubelet: every preStop hook starts at once; regular containers get SIGTERM first,
        each sidecar only once the containers started after it have stopped (reverse
        order), with what is left of the grace period."""
        grace = 30
        if pod is not None:
            meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
        deadline = time.monotonic() + int(grace)
        running = [c for c in containers if c.state in (podsync.RUNNING, podsync.CREATED)]
        spec = (pod or {}).get("spec") or {}
        specs = {c.get("name", ""): c for c in spec.get("containers") or []}
        sidecars = [c.get("name", "") for c in spec.get("initContainers") or [] if podsync.is_sidecar(c)]
        specs.update({c.get("name", ""): c for c in spec.get("initContainers") or [] if podsync.is_sidecar(c)})

        async def stop(c: podsync.ContainerState, after: list[asyncio.Task[None]]) -> None:
            if pod is not None:
                self._event(pod, c.name, "Normal", "Killing", f"Stopping container {c.name}")
                hook = ((specs.get(c.name) or {}).get("lifecycle") or {}).get("preStop")
                if hook and c.state == podsync.RUNNING:
                    await self._pre_stop(pod, c, hook, int(grace), specs.get(c.name) or {}, sandbox)
            if after:
                await asyncio.wait(after, timeout=max(deadline - time.monotonic(), 0))
            # The hook's and the wait's time count against the grace period, as in Kubernetes.
            await self._stop_container(c.id, max(math.ceil(deadline - time.monotonic()), 0))

        ordered = {c.name: c for c in running if c.init and c.name in sidecars}
        first = [asyncio.create_task(stop(c, [])) for c in running if c.name not in ordered]
        tasks = list(first)
        for name in reversed(sidecars):
            if name in ordered:
                tasks.append(asyncio.create_task(stop(ordered[name], list(tasks))))
        if tasks:
            await asyncio.gather(*tasks)
        if sandbox is not None:
            await self._stop_sandbox(sandbox.id)

    async def _terminate(self, key: str, pod: Obj, sandbox: podsync.SandboxState | None,
                         containers: list[podsync.ContainerState]) -> None:
        """Stop a deleted pod's containers in the background; the sync that follows finds
        them stopped and finishes the deletion."""
        try:
            await self._kill_pod(pod, sandbox, containers)
        except Exception:  # noqa: BLE001 - the next sync stops what is left
            log.exception("stopping pod %s failed", key)
        finally:
            self._stop_probers(key)
            self._terminations.pop(key, None)
            self.queue.add(key)

    async def _pre_stop(self, pod: Obj, c: podsync.ContainerState, hook: Obj, grace: int, spec: Obj,
                        sandbox: podsync.SandboxState | None) -> None:
        """Run a preStop hook (exec, httpGet or sleep) within the grace period."""
        try:
            if hook.get("exec"):
                await asyncio.wait_for(self.cri.exec_sync(c.id, list(hook["exec"].get("command") or []), grace),
                                       grace + 1)
            elif hook.get("httpGet") and sandbox is not None:
                probe = {"httpGet": hook["httpGet"], "timeoutSeconds": grace}
                await asyncio.wait_for(run_probe(probe, spec, sandbox.ip, self._exec_fn(c.id), self._session()),
                                       grace + 1)
            elif hook.get("sleep"):
                await asyncio.sleep(min(int(hook["sleep"].get("seconds") or 0), grace))
        except (TimeoutError, CriError) as e:
            self._event(pod, c.name, "Warning", "FailedPreStopHook", f"PreStopHook failed: {e}")

    async def _post_start(self, pod: Obj, c: podsync.ContainerState, container: Obj, hook: Obj,
                          sandbox: podsync.SandboxState, plan: podsync.Plan) -> None:
        """Run a postStart hook right after the container started; the sync (and so the
        container's Running in status) waits for it. A failing hook kills the container,
        which then restarts per the restart policy, as the kubelet does."""
        # A hostNetwork pod's address is the node's.
        failure = await run_hook(hook, container, sandbox.ip or self.host.internal_ip, self._exec_fn(c.id),
                                 self._session(), POST_START_TIMEOUT)
        if not failure:
            return
        meta = pod["metadata"]
        failure = failure.replace(" failed - ", f" for Container {c.name!r} in Pod "
                                  f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')}) failed - ", 1)
        # The kubelet keeps the hook's output out of the event (it may hold secrets).
        self._event(pod, c.name, "Warning", "FailedPostStartHook", "PostStartHook failed")
        self._event(pod, c.name, "Normal", "Killing", "FailedPostStartHook")
        grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        deadline = time.monotonic() + grace
        if pre_stop:
            await self._pre_stop(pod, c, pre_stop, grace, container, sandbox)
        await self._stop_container(c.id, max(math.ceil(deadline - time.monotonic()), 0))
        plan.waiting[c.name] = ("PostStartHookError", failure)
        plan.requeue_after = 1.0 if plan.requeue_after is None else min(plan.requeue_after, 1.0)

    def _sidecars_started(self, pod: Obj, containers: list[podsync.ContainerState]) -> dict[str, bool]:
        """Per running sidecar with a startupProbe: has the probe succeeded yet."""
        latest = podsync.latest_by_name(containers)
        out: dict[str, bool] = {}
        for ic in (pod.get("spec") or {}).get("initContainers") or []:
            c = latest.get(ic.get("name", ""))
            if podsync.is_sidecar(ic) and ic.get("startupProbe") and c is not None and c.state == podsync.RUNNING:
                out[c.name] = bool(self.probe_verdicts.get(c.id, {}).get(STARTUP))
        return out

    async def _check_seccomp_filter(self, pod: Obj, cid: str, sandbox: bool = False) -> None:
        """Off a start's critical path: learn the started container's (or pause
        container's) compiled seccomp filter, or check the one it was given (see
        seccompfilters); one given wrongly is stopped at once, and the pod's next sync
        restarts it as any exited container (a new sandbox for a stopped one)."""
        # A check after the pod's start, not amid it: its reads and digest would hold up
        # the next CRI call (a sandbox's, the pod's first CreateContainer). A filter to
        # learn is learned at once: the next pods are given it.
        if not self.seccomp_filters.teaches(cid):
            await asyncio.sleep(SECCOMP_CHECK_DELAY)
        if await asyncio.to_thread(self.seccomp_filters.check, cid):
            return
        await (self._stop_sandbox(cid) if sandbox else self._stop_container(cid, 0))
        self.queue.add(object_key(pod))

    async def _stop_container(self, cid: str, grace: int) -> None:
        try:
            await self.cri.stop_container(cid, grace)
        except CriError as e:
            if not e.not_found:
                raise

    async def _stop_sandbox(self, sid: str) -> None:
        try:
            await self.cri.stop_pod_sandbox(sid)
        except CriError as e:
            if not e.not_found:
                raise

    async def _kill_runtime_pod(self, uid: str) -> None:
        sandbox, containers, stale = await self._runtime_state(uid)
        await self._kill_pod(None, sandbox, containers)
        for c in containers:
            await self._remove_container(c.id)
        for sid in ([sandbox.id] if sandbox else []) + stale:
            await self._remove_sandbox(sid)
        await asyncio.to_thread(self.volumes.teardown, uid)
        self._seen.pop(uid, None)
        await self._forget_allocation(uid)

    async def _report_final(self, pod: Obj) -> None:
        """A deleted pod's last status once its containers stopped: how each ended and the
        pod Succeeded or Failed, so a watcher sees how it ended before it goes."""
        sandbox, containers, _ = await self._runtime_state(pod["metadata"].get("uid", ""))
        phase = podsync.deleted_pod_phase(pod, containers)
        if phase is None:
            return
        plan = podsync.Plan(failed=phase == "Failed")
        status = podsync.pod_status(pod, sandbox, containers, plan, self.host.internal_ip, time.time(), {})
        status["phase"] = phase
        await self.patch_status(pod, status)

    async def _finish_delete(self, pod: Obj) -> None:
        """The containers are gone: remove the runtime's records, then the pod object
        (grace 0, pinned to this pod's uid), as the kubelet does."""
        meta = pod["metadata"]
        await self._kill_runtime_pod(meta.get("uid", ""))
        try:
            await self.client.delete(PODS, meta.get("namespace"), meta.get("name", ""), grace_period_seconds=0,
                                     preconditions={"uid": meta.get("uid", "")})
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    # -- probes -------------------------------------------------------------------------------------

    def _ensure_probers(self, pod: Obj, sandbox: podsync.SandboxState | None,
                        containers: list[podsync.ContainerState]) -> dict[str, tuple[bool, bool]]:
        """Start the probes of running containers (startup first, then liveness and
        readiness), stop those of containers gone; returns name -> (ready, started)."""
        key = object_key(pod)
        pod_spec = pod.get("spec") or {}
        specs = {c.get("name", ""): c for c in pod_spec.get("containers") or []}
        # Sidecars are probed as regular containers are.
        sidecars = {c.get("name", ""): c for c in pod_spec.get("initContainers") or [] if podsync.is_sidecar(c)}
        running = {c.id: c for c in podsync.latest_by_name(containers).values()
                   if c.state == podsync.RUNNING and not c.ephemeral
                   and c.name in (sidecars if c.init else specs)}
        specs.update(sidecars)
        out: dict[str, tuple[bool, bool]] = {}
        ip = sandbox.ip if sandbox is not None else ""
        status = pod.get("status") or {}
        reported = {s.get("name"): s for s in [*(status.get("containerStatuses") or []),
                                               *(status.get("initContainerStatuses") or [])]}
        pod_ready = pod_is_ready(pod)
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        for cid, c in running.items():
            spec = specs[c.name]
            if cid not in self.probe_verdicts:
                self.probe_verdicts[cid] = verdicts_kept_over_restart(
                    reported.get(c.name), cid, c.started_at, self.started_at, pod_ready)
            verdicts = self.probe_verdicts[cid]
            started = verdicts.get(STARTUP, False) if spec.get("startupProbe") else True
            if terminating:  # only readiness is probed during a deleted pod's grace period
                wanted = {READINESS: spec.get("readinessProbe")} if started else {}
            elif not started:
                wanted = {STARTUP: spec.get("startupProbe")}
            else:
                wanted = {LIVENESS: spec.get("livenessProbe"), READINESS: spec.get("readinessProbe")}
            for kind, probe in wanted.items():
                if probe and (cid, kind) not in self.probers:
                    prober = Prober(kind, probe, spec, ip, self._exec_fn(cid), self._session(),
                                    self._on_verdict(key, cid, c.name, pod), self._on_probe_failure(pod, c.name),
                                    verdicts.get(kind), on_warning=self._on_probe_warning(pod, c.name))
                    self.probers[(cid, kind)] = prober
                    self._prober_pod[(cid, kind)] = key
                    prober.start()
            ready = verdicts.get(READINESS, False) if spec.get("readinessProbe") else True
            out[c.name] = (ready, started)
        self._stop_probers(key, keep=set(running))
        return out

    def _session(self) -> aiohttp.ClientSession:
        if self._probe_session is None:
            self._probe_session = aiohttp.ClientSession()
        return self._probe_session

    def _exec_fn(self, cid: str) -> Any:
        async def run(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
            return await self.cri.exec_sync(cid, cmd, max(int(timeout + 0.999), 1))
        return run

    def _stop_probers(self, key: str, keep: set[str] | None = None, kinds: tuple[str, ...] | None = None) -> None:
        """Stop the probes (of `kinds`, by default all) of `key`'s containers, but those of
        the ids in `keep`."""
        for (cid, kind), prober in list(self.probers.items()):
            if self._prober_pod.get((cid, kind)) == key and cid not in (keep or set()) and \
                    (kinds is None or kind in kinds):
                prober.stop()
                del self.probers[(cid, kind)]
                self._prober_pod.pop((cid, kind), None)
                if kinds is None:
                    self.probe_verdicts.pop(cid, None)

    def _on_verdict(self, key: str, cid: str, name: str, pod: Obj) -> Any:
        def changed(kind: str, ok: bool) -> None:
            self.probe_verdicts.setdefault(cid, {})[kind] = ok
            if not ok and kind in (LIVENESS, STARTUP):
                self._spawn(self._kill_unhealthy(pod, cid, name, kind))
            self.queue.add(key)
        return changed

    def _on_probe_failure(self, pod: Obj, container: str) -> Any:
        def failed(kind: str, why: str) -> None:
            self._event(pod, container, "Warning", "Unhealthy", f"{kind} probe failed: {why}")
        return failed

    def _on_probe_warning(self, pod: Obj, container: str) -> Any:
        def warned(kind: str, why: str) -> None:
            self._event(pod, container, "Warning", "ProbeWarning", f"{kind} probe warning: {why}")
        return warned

    async def _kill_unhealthy(self, pod: Obj, cid: str, name: str, kind: str) -> None:
        self._stop_probers(object_key(pod), keep={i for (i, _k) in self.probers if i != cid})
        grace = kill_grace(pod, name, kind)
        self._event(pod, name, "Normal", "Killing", f"Container {name} failed {kind.lower()} probe, will be restarted")
        await self._stop_container(cid, grace)
        self.queue.add(object_key(pod))

    async def _admit(self, pod: Obj) -> admission.Rejection | None:
        """Why the node cannot run `pod`, or None; the pods counted against it are the active
        ones of the node created before it (those the kubelet would have admitted first)."""
        meta = pod["metadata"]
        mine = (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or "")
        # Each counted with what the node allocated it (a resize may be pending), as the kubelet does.
        others = [node_resize.as_allocated(p, self.allocations.get(p["metadata"].get("uid", "")))
                  for p in self.pods.list() if (p.get("metadata") or {}).get("uid") != meta.get("uid")
                  and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                  and ((p["metadata"].get("creationTimestamp") or ""), p["metadata"].get("namespace") or "",
                       p["metadata"].get("name") or "") < mine]
        rejection = admission.admit(pod, self.features, self.node_obj, others)
        if rejection is not None and rejection.reason == admission.NODE_AFFINITY:
            # Labels may have changed since the last status update: ask again, as the kubelet does.
            self.node_obj = await self.client.get(NODES, None, self.name)
            rejection = admission.admit(pod, self.features, self.node_obj, others)
        return rejection

    async def _reject(self, pod: Obj, rejection: admission.Rejection) -> None:
        """Refuse the pod as the kubelet's admit handlers do: an event, and phase Failed with
        the reason, before any of it is created."""
        self._event(pod, "", "Warning", rejection.reason, rejection.message)
        status = {"phase": "Failed", "reason": rejection.reason, "message": rejection.status_message,
                  "qosClass": qos_class(pod)}
        await self.patch_status(pod, status)

    def _event(self, pod: Obj, container: str, type_: str, reason: str, message: str) -> None:
        """Record an event about `pod` (and one of its containers) in the background."""
        self._spawn(self.client.event(_involved(pod, container), type_, reason, message, "kubelet"))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _report(self, pod: Obj, sandbox: podsync.SandboxState | None,
                      containers: list[podsync.ContainerState], plan: podsync.Plan) -> None:
        probes = self._ensure_probers(pod, sandbox, containers)
        status = podsync.pod_status(pod, sandbox, containers, plan, self.host.internal_ip, time.time(), probes)
        uid = pod["metadata"].get("uid", "")
        node_resize.decorate_status(status, pod, self.allocations.get(uid), self._resize_pending.get(uid),
                                    self._resize_error.get(uid, ""), _now())
        old = pod.get("status") or {}
        if _same_status(old, status):
            return
        await self.patch_status(pod, status)

    async def patch_status(self, pod: Obj, status: Obj) -> bool:
        """Write `status` onto this very pod; False when it is gone or was replaced meanwhile.

        The uid makes the patch miss (422) a pod recreated under the same name, which would
        otherwise take this one's finished status and be killed for it, as the kubelet's does."""
        meta = pod["metadata"]
        body = {"metadata": {"uid": meta.get("uid", "")}, "status": status}
        if TIMING:
            log.warning("status %s/%s %s", meta.get("namespace"), meta.get("name"), status.get("phase"))
        try:
            written = await self.client.patch(PODS, meta.get("namespace"), meta.get("name", ""), body,
                                              patch_type="merge", subresource="status", field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404 or (e.code == 422 and "metadata.uid" in e.message):
                return False
            raise
        version = (written.get("metadata") or {}).get("resourceVersion")
        if version and meta.get("uid") and self.pods.get(meta.get("namespace"), meta.get("name", "")) is not None:
            self._own_status[meta["uid"]] = version
        return True

    # -- run ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        os.makedirs(self.seccomp_dir, exist_ok=True)
        node = await self.register()
        await self._ensure_network(node)
        await self.factory.start()
        await self.factory.wait_synced(60)
        for pod in self.pods.list():
            self._enqueue(pod)
        loops = [asyncio.create_task(loop()) for loop in (self._lease_loop, self._status_loop, self._relist_loop,
                                                          self.local_path.run,
                                                          StorageEvictor(self, stats=self.stats).run)]
        try:
            await run_workers(self.queue, self.sync, self.options.workers, "agent")
        finally:
            await cancel_and_wait([*loops, *self._terminations.values()])
            for prober in self.probers.values():
                prober.stop()
            if self._probe_session is not None:
                await self._probe_session.close()
            await self.objects.close()
            await self.factory.stop()


def resync_delay(rand: float) -> float:
    """How long until a pod just synced is synced again, for `rand` in [0, 1)."""
    return RESYNC_INTERVAL * (1 - RESYNC_JITTER * rand)


def image_registry(image: str) -> str:
    """The registry host an image reference names (Docker Hub when none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pull_credentials(secret: Obj, registry: str) -> tuple[str, str, str] | None:
    """(user, password, server) for `registry` from a kubernetes.io/dockerconfigjson or
    kubernetes.io/dockercfg Secret, or None."""
    data = secret.get("data") or {}
    try:
        if ".dockerconfigjson" in data:
            auths = json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
        elif ".dockercfg" in data:
            auths = json.loads(base64.b64decode(data[".dockercfg"]))
        else:
            return None
    except ValueError:
        return None
    aliases = {registry} | ({"index.docker.io", "registry-1.docker.io"} if registry == "docker.io" else set())
    for key, entry in auths.items():
        host = key.split("://", 1)[-1].split("/", 1)[0]
        if host in aliases and isinstance(entry, dict):
            user, password = entry.get("username", ""), entry.get("password", "")
            if not user and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
            return user, password, host
    return None


def memory_working_set(pid: int) -> int | None:
    """The working set of a process's memory cgroup (v1 or v2), or None when unreadable."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            proc_cgroup = f.read()
        with open("/proc/self/mountinfo") as f:
            dirs = cgroup_dirs(f.read(), proc_cgroup)
        if "memory" in dirs:
            with open(dirs["memory"] + "/memory.usage_in_bytes") as f, open(dirs["memory"] + "/memory.stat") as g:
                return memory_v1(int(f.read()), parse_flat_keyed(g.read()), 0, 0).working_set
        if "unified" in dirs:
            with open(dirs["unified"] + "/memory.current") as f, open(dirs["unified"] + "/memory.stat") as g:
                return memory_v2(int(f.read()), parse_flat_keyed(g.read()), 0, 0).working_set
    except (OSError, ValueError):
        return None
    return None


def _involved(pod: Obj, container: str) -> Obj:
    """The pod as an event's involved object, pointing at one of its containers."""
    meta = pod.get("metadata") or {}
    involved: Obj = {"kind": "Pod", "apiVersion": "v1",
                     "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")}}
    if container:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    return involved


def _same_status(old: Obj, new: Obj) -> bool:
    def strip(st: Obj) -> Obj:
        return {k: v for k, v in st.items() if k != "conditions"} | {
            "conditions": sorted(((c.get("type"), c.get("status"), c.get("reason")) for c in st.get("conditions") or []),
                                 key=str)}
    return strip(old) == strip(new)

