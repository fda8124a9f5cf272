"""Small pure helpers about pods and owners shared by the workload controllers:
availability (minReadySeconds), controller references and label-selector matching
with the controllers' semantics. Readiness, phase and activity are api/pods.py's."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from kybernetes.api.errors import ApiError
from kybernetes.api.interning import intern_strings
from kybernetes.api.pods import pod_is_ready, pod_ready_since
from kybernetes.api.selectors import LabelSelector, nothing, selector_from_label_selector_object
from kybernetes.api.timefmt import parse_time as parse_time  # the workload controllers import it from here
from kybernetes.api.timefmt import rfc3339
from kybernetes.client.protocols import Cache

Obj = dict[str, Any]


# The workload controllers import these names from here.
format_time = rfc3339


def pod_available_at(pod: Mapping[str, Any], min_ready_seconds: int) -> dt.datetime | None:
    """The moment a ready pod counts as available, or None if it is not ready. A ready pod
    without a transition time only counts when no minReadySeconds is asked for."""
    if not pod_is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    since = pod_ready_since(pod)
    if since is None:
        return None
    return since + dt.timedelta(seconds=min_ready_seconds)


def pod_is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least `min_ready_seconds` (Kubernetes requires strictly more than that)."""
    if min_ready_seconds <= 0:
        return pod_is_ready(pod)
    at = pod_available_at(pod, min_ready_seconds)
    return at is not None and at < now


def node_index(pod: Mapping[str, Any]) -> list[str]:
    """The informer index of pods by the node they are bound to."""
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


_VIEW_CONTAINER = ("name", "image", "ports", "resources", "restartPolicy")
_VIEW_CONTAINER_STATUS = ("name", "ready", "started", "restartCount")


def controller_view(pod: Obj) -> Obj:
    """What the controller manager keeps of a pod: all of it but the container details no
    controller reads (commands, env, probes, volumes but claims, container states), which are
    much of each pod's memory in a process that holds every pod of the cluster."""
    spec = pod.get("spec")
    if isinstance(spec, dict):
        volumes = spec.get("volumes")
        spec = {k: v for k, v in spec.items() if k not in ("volumes", "ephemeralContainers")}
        # Which claims a pod uses is kept: PVC protection and the PV binder read it, the
        # ephemeral volume controller makes claims from the templates.
        claims = [{"name": v.get("name"), key: v[key]} for v in volumes or () if isinstance(v, dict)
                  for key in ("persistentVolumeClaim", "ephemeral") if isinstance(v.get(key), dict)]
        if claims:
            spec["volumes"] = claims
        for key in ("containers", "initContainers"):
            if key in spec:
                spec[key] = [{k: c[k] for k in _VIEW_CONTAINER if k in c} for c in spec[key] or ()]
        pod["spec"] = spec
    status = pod.get("status")
    if isinstance(status, dict):
        for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
            if key in status:
                status[key] = [_view_container_status(c) for c in status[key] or ()]
    return intern_strings(pod)


def _view_container_status(c: Obj) -> Obj:
    out = {k: c[k] for k in _VIEW_CONTAINER_STATUS if k in c}
    # The Job controller reads how a container ended (pod failure policy exit codes, back-off times).
    terminated = (c.get("state") or {}).get("terminated")
    if isinstance(terminated, dict):
        out["state"] = {"terminated": {k: terminated[k] for k in ("exitCode", "reason", "finishedAt")
                                       if k in terminated}}
    return out


def next_available_in(pods: Iterable[Mapping[str, Any]], min_ready: int, now: dt.datetime) -> float | None:
    """Seconds until the next ready-but-not-yet-available pod becomes available."""
    if min_ready <= 0:
        return None
    soonest: float | None = None
    for pod in pods:
        at = pod_available_at(pod, min_ready)
        if at is None or at < now:
            continue
        # Availability needs strictly more than minReadySeconds: look just after the instant.
        wait = (at - now).total_seconds() + 0.05
        soonest = wait if soonest is None else min(soonest, wait)
    return soonest


def orphan_index(obj: Mapping[str, Any]) -> list[str]:
    """The informer index of objects without a controller, by namespace: the candidates
    for adoption, so that a sync need not scan every pod of a namespace."""
    if controller_ref(obj) is not None:
        return []
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def owner_reference(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """A controller ownerReference pointing at `owner`, as controllers set it on what they create."""
    meta = owner.get("metadata") or {}
    return {"apiVersion": api_version, "kind": kind, "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}


def reference_to(owner: Mapping[str, Any]) -> Obj:
    """A controller ownerReference pointing at `owner`, of its own apiVersion and kind (a
    ReplicaSet's when it names none)."""
    return owner_reference(owner, owner.get("apiVersion") or "apps/v1", owner.get("kind") or "ReplicaSet")


def _guarded_owner_patch(obj: Mapping[str, Any], refs: list[Obj]) -> list[Obj]:
    # The test operations make the patch fail if the object was replaced or changed since the
    # snapshot the decision was made on, so an ownership change is never based on stale data.
    meta = obj.get("metadata") or {}
    ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid", "")}]
    if meta.get("resourceVersion"):
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]})
    if refs:
        ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": refs})
    else:
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    return ops


def adopt_patch(owner: Mapping[str, Any], obj: Mapping[str, Any]) -> list[Obj]:
    """JSON patch making `owner` the controller of an orphan (a pod, a revision)."""
    refs = [dict(r) for r in (obj.get("metadata") or {}).get("ownerReferences") or []
            if r.get("uid") != ((owner.get("metadata") or {}).get("uid") or "")]
    refs.append(reference_to(owner))
    return _guarded_owner_patch(obj, refs)


def release_patch(owner: Mapping[str, Any], obj: Mapping[str, Any]) -> list[Obj]:
    """JSON patch removing `owner`'s reference from an object it no longer selects."""
    refs = [dict(r) for r in (obj.get("metadata") or {}).get("ownerReferences") or []
            if r.get("uid") != ((owner.get("metadata") or {}).get("uid") or "")]
    return _guarded_owner_patch(obj, refs)


@functools.lru_cache(maxsize=4096)
def _compiled(selector_json: bytes) -> LabelSelector:
    sel = orjson.loads(selector_json)
    if not sel:
        return nothing()
    try:
        return selector_from_label_selector_object(sel)
    except ApiError:
        return nothing()


def compile_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A spec selector as a matcher. Unlike the API's conversion, a missing, empty or invalid
    selector selects nothing: a controller must never claim every pod of a namespace."""
    if not selector:
        return nothing()
    return _compiled(orjson.dumps(selector, option=orjson.OPT_SORT_KEYS))


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    return compile_selector(selector).matches(labels or {})


def live_owner(owners: Cache, obj: Mapping[str, Any], ref: Mapping[str, Any] | None) -> Obj | None:
    """The cached object that `ref`, a controller reference on `obj` whose kind the caller
    has checked, names in `obj`'s namespace; None if it is gone or is a namesake (other uid)."""
    if ref is None:
        return None
    owner = owners.get((obj.get("metadata") or {}).get("namespace"), ref.get("name") or "")
    if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
        return None
    return owner


def selecting(owners: Cache, obj: Mapping[str, Any],
              view: Callable[[Obj], Mapping[str, Any]] | None = None) -> list[Obj]:
    """The cached objects in `obj`'s namespace whose spec selector (read through `view`)
    matches `obj`'s labels: the controllers that could adopt it as an orphan."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return [o for o in owners.by_index("namespace", meta.get("namespace") or "")
            if compile_selector(((view(o) if view else o).get("spec") or {}).get("selector")).matches(labels)]
