"""The Deployment controller's decisions, as pure functions of snapshots.

`plan_deployment` takes a Deployment, the ReplicaSets it controls and their pods, and
returns what one reconcile pass should do, following Kubernetes' controller step by
step: which ReplicaSet to create (named `<deployment>-<pod-template-hash>`), which to
scale (rolling update within maxSurge/maxUnavailable, Recreate, proportional scaling
of a deployment resized mid-rollout), which old ones to delete (revisionHistoryLimit),
the revision annotations, the new status with its Available/Progressing conditions,
and when to look again (progress deadline). Nothing here does I/O.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.controllers.podutil import (
    controller_ref,
    format_time,
    owner_reference,
    parse_time,
    selector_matches,
)

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Deployment annotations that describe the deployment itself, never copied onto its ReplicaSets.
_SKIP_COPY = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000
# progressDeadlineSeconds at MaxInt32 means "never time out", as in Kubernetes.
NO_DEADLINE = 2**31 - 1

COND_AVAILABLE = "Available"
COND_PROGRESSING = "Progressing"
COND_REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- plan ------------------------------------------------------------------------------


@dataclass
class CreateReplicaSet:
    obj: Obj
    event: str | None = None


@dataclass
class UpdateReplicaSet:
    """Set replicas, annotations and minReadySeconds on the latest copy of ReplicaSet `name`."""

    name: str
    replicas: int
    annotations: dict[str, str]
    min_ready_seconds: int
    event: str | None = None


@dataclass
class DeleteReplicaSet:
    name: str
    uid: str


Action = CreateReplicaSet | UpdateReplicaSet | DeleteReplicaSet


@dataclass
class Plan:
    """One reconcile pass. `actions` run in order; a failure stops the pass (the key is
    retried). `annotations` are Deployment annotations to set; `status` is the new status
    when it differs from the current one."""

    actions: list[Action] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    status: Obj | None = None
    requeue_after: float | None = None
    in_progress: bool = False
    warnings: list[tuple[str, str]] = field(default_factory=list)


# -- small helpers ---------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def spec_replicas(obj: Mapping[str, Any]) -> int:
    value = _spec(obj).get("replicas")
    return 1 if value is None else int(value)


def _status_int(obj: Mapping[str, Any], key: str) -> int:
    return int(_status(obj).get(key) or 0)


def _sum_spec(rss: list[Obj]) -> int:
    return sum(spec_replicas(rs) for rs in rss)


def _sum_status(rss: list[Obj], key: str) -> int:
    return sum(_status_int(rs, key) for rs in rss)


def _active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if spec_replicas(rs) > 0]


def _created_key(rs: Mapping[str, Any]) -> tuple[dt.datetime, str]:
    stamp = parse_time(_meta(rs).get("creationTimestamp")) or dt.datetime.min.replace(tzinfo=dt.UTC)
    return stamp, _meta(rs).get("name") or ""


def _int_annotation(obj: Mapping[str, Any], key: str) -> int | None:
    raw = (_meta(obj).get("annotations") or {}).get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def revision_of(rs: Mapping[str, Any]) -> int:
    """The `deployment.kubernetes.io/revision` of a ReplicaSet (0 when missing or garbled)."""
    return _int_annotation(rs, REVISION) or 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def is_rolling(deploy: Mapping[str, Any]) -> bool:
    return (_spec(deploy).get("strategy") or {}).get("type", "RollingUpdate") != "Recreate"


def has_progress_deadline(deploy: Mapping[str, Any]) -> bool:
    value = _spec(deploy).get("progressDeadlineSeconds")
    return value is not None and int(value) != NO_DEADLINE


def _now_str(now: dt.datetime) -> str:
    return format_time(now)


# -- maxSurge / maxUnavailable ---------------------------------------------------------

_PERCENT = re.compile(r"^(-?\d+)%$")


def scaled_value(value: int | str | None, total: int, round_up: bool, default: str = "25%") -> int:
    """An IntOrString of the rolling strategy against `total` replicas: percentages round up
    for maxSurge and down for maxUnavailable, as Kubernetes does."""
    if value is None:
        value = default
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    m = _PERCENT.match(text)
    if m is None:
        try:
            return int(text)
        except ValueError:
            return 0
    pct = int(m.group(1))
    if round_up:
        return -((-pct * total) // 100)
    return (pct * total) // 100


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas. Both zero would never make progress, so
    unavailable becomes 1 then."""
    surge = max(scaled_value(max_surge, desired, True), 0)
    unavailable = max(scaled_value(max_unavailable, desired, False), 0)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_params(deploy: Mapping[str, Any]) -> Mapping[str, Any]:
    return (_spec(deploy).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(deploy: Mapping[str, Any]) -> int:
    if not is_rolling(deploy):
        return 0
    p = _rolling_params(deploy)
    return resolve_fenceposts(p.get("maxSurge"), p.get("maxUnavailable"), spec_replicas(deploy))[0]


def max_unavailable(deploy: Mapping[str, Any]) -> int:
    replicas = spec_replicas(deploy)
    if not is_rolling(deploy) or replicas == 0:
        return 0
    p = _rolling_params(deploy)
    unavailable = resolve_fenceposts(p.get("maxSurge"), p.get("maxUnavailable"), replicas)[1]
    return min(unavailable, replicas)


# -- pod template hash -----------------------------------------------------------------


def _normalize(value: Any) -> Any:
    """Drop nulls and empty maps/lists so that templates equal in meaning compare equal
    (the API treats a missing field, null and an empty collection alike)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            nv = _normalize(v)
            if nv is None or nv == {} or nv == []:
                continue
            out[k] = nv
        return out
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _fnv1a32(data: bytes, h: int = 0x811C9DC5) -> int:
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Render text in the alphabet without vowels or look-alike characters, so that the
    names it ends up in never spell words."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def pod_template_hash(template: Mapping[str, Any] | None, collision_count: int | None = None) -> str:
    """A stable hash of a pod template: equal templates (whatever their key order) hash
    alike, a different collisionCount gives a different value."""
    data = orjson.dumps(_normalize(copy.deepcopy(dict(template or {}))), option=orjson.OPT_SORT_KEYS)
    h = _fnv1a32(data)
    if collision_count is not None:
        h = _fnv1a32(int(collision_count & 0xFFFFFFFF).to_bytes(4, "little"), h)
    return safe_encode(str(h))


def _without_hash(template: Mapping[str, Any] | None) -> Obj:
    t = copy.deepcopy(dict(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return _normalize(t)


def equal_ignore_hash(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two pod templates are the same apart from the pod-template-hash label."""
    return _without_hash(a) == _without_hash(b)


def find_new_replicaset(deploy: Mapping[str, Any], rss: list[Obj]) -> Obj | None:
    """The ReplicaSet running the deployment's current template; the oldest one if
    several do (which can happen after an upgrade), so that the choice is stable."""
    template = _spec(deploy).get("template")
    for rs in sorted(rss, key=_created_key):
        if equal_ignore_hash(_spec(rs).get("template"), template):
            return rs
    return None


# -- adoption --------------------------------------------------------------------------


@dataclass
class Claim:
    owned: list[Obj]
    adopt: list[Obj]
    release: list[Obj]


def claim_replicasets(deploy: Mapping[str, Any], rss: list[Obj]) -> Claim:
    """Split the namespace's ReplicaSets into those this deployment controls, orphans it
    should adopt (labels match its selector) and owned ones it should release (labels no
    longer match). A deployment being deleted adopts nothing."""
    uid = _meta(deploy).get("uid")
    selector = _spec(deploy).get("selector")
    deleting = bool(_meta(deploy).get("deletionTimestamp"))
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for rs in rss:
        if _meta(rs).get("namespace") != _meta(deploy).get("namespace"):
            continue
        ref = controller_ref(rs)
        matches = selector_matches(selector, _meta(rs).get("labels"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                owned.append(rs)
            elif not deleting:
                release.append(rs)
            continue
        if matches and not deleting and not _meta(rs).get("deletionTimestamp"):
            adopt.append(rs)
    return Claim(owned, adopt, release)


def controller_reference(deploy: Mapping[str, Any]) -> Obj:
    return owner_reference(deploy, "apps/v1", "Deployment")


def adoption_patch(rs: Mapping[str, Any], deploy: Mapping[str, Any]) -> Obj:
    """A merge patch making `deploy` the controller of `rs`; the resourceVersion makes it
    fail if someone else claimed the ReplicaSet meanwhile."""
    refs = [r for r in _meta(rs).get("ownerReferences") or [] if r.get("uid") != _meta(deploy).get("uid")]
    refs.append(controller_reference(deploy))
    return {"metadata": {"ownerReferences": refs, "resourceVersion": _meta(rs).get("resourceVersion")}}


def release_patch(rs: Mapping[str, Any], deploy: Mapping[str, Any]) -> Obj:
    refs = [r for r in _meta(rs).get("ownerReferences") or [] if r.get("uid") != _meta(deploy).get("uid")]
    return {"metadata": {"ownerReferences": refs or None, "resourceVersion": _meta(rs).get("resourceVersion")}}


def create_conflict_is_ours(deploy: Mapping[str, Any], existing: Mapping[str, Any]) -> bool:
    """When creating the new ReplicaSet finds the name taken: True if the existing one is
    ours and runs our template (a stale cache), False for a hash collision, which calls
    for bumping status.collisionCount."""
    ref = controller_ref(existing)
    return (ref is not None and ref.get("uid") == _meta(deploy).get("uid")
            and equal_ignore_hash(_spec(existing).get("template"), _spec(deploy).get("template")))


def status_with_collision(deploy: Mapping[str, Any]) -> Obj:
    status = copy.deepcopy(dict(_status(deploy)))
    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
    return status


# -- annotations -----------------------------------------------------------------------


def _annotations(rs: Obj) -> dict[str, str]:
    meta = rs.setdefault("metadata", {})
    if meta.get("annotations") is None:
        meta["annotations"] = {}
    return meta["annotations"]


def copy_deployment_annotations(deploy: Mapping[str, Any], rs: Obj) -> bool:
    """Copy the deployment's own annotations (change-cause and the like) onto `rs`."""
    changed = False
    ann = _annotations(rs)
    for k, v in (_meta(deploy).get("annotations") or {}).items():
        if k in _SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = _annotations(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def set_new_rs_annotations(deploy: Mapping[str, Any], rs: Obj, new_revision: int, exists: bool) -> bool:
    """Bring the new ReplicaSet's annotations up to date. A reused ReplicaSet (a rollback to
    an earlier template) takes the new revision and remembers its former ones in
    revision-history."""
    changed = copy_deployment_annotations(deploy, rs)
    ann = _annotations(rs)
    old_raw = ann.get(REVISION)
    try:
        old_revision = int(old_raw) if old_raw is not None else 0
    except ValueError:
        return changed
    if old_revision < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if exists and old_raw is not None:
            history = [h for h in (ann.get(REVISION_HISTORY) or "").split(",") if h]
            history.append(old_raw)
            while len(history) > 1 and len(",".join(history)) > MAX_REVISION_HISTORY_CHARS:
                history.pop(0)
            ann[REVISION_HISTORY] = ",".join(history)
    if not exists:
        replicas = spec_replicas(deploy)
        if set_replicas_annotations(rs, replicas, replicas + max_surge(deploy)):
            changed = True
    return changed


# -- scaling arithmetic ----------------------------------------------------------------


def new_rs_new_replicas(deploy: Mapping[str, Any], all_rss: list[Obj], new_rs: Obj) -> int:
    """How far the new ReplicaSet may grow now: up to the surge ceiling for a rolling
    update, straight to the full count for Recreate."""
    replicas = spec_replicas(deploy)
    if not is_rolling(deploy):
        return replicas
    current = _sum_spec(all_rss)
    ceiling = replicas + max_surge(deploy)
    if current >= ceiling:
        return spec_replicas(new_rs)
    grow = min(ceiling - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + grow


def _rs_fraction(rs: Obj, deploy: Mapping[str, Any]) -> int:
    """How many replicas `rs` gains (or loses) to keep its share when the deployment's
    size changes. The share is measured against the size recorded in its max-replicas
    annotation when it was last scaled."""
    replicas = spec_replicas(deploy)
    if replicas == 0:
        return -spec_replicas(rs)
    deployment_replicas = replicas + max_surge(deploy)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = _status_int(deploy, "replicas")
    if annotated <= 0:
        return 0
    # Round half away from zero like Go's math.Round (Python's round() rounds half to even).
    num = spec_replicas(rs) * deployment_replicas
    new_size = (2 * num + annotated) // (2 * annotated)
    return new_size - spec_replicas(rs)


def get_proportion(rs: Obj | None, deploy: Mapping[str, Any], to_add: int, added: int) -> int:
    """The part of `to_add` that `rs` takes, never overshooting what is left."""
    if rs is None or spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _rs_fraction(rs, deploy)
    allowed = to_add - added
    if to_add > 0:
        return min(fraction, allowed)
    return max(fraction, allowed)


# -- conditions ------------------------------------------------------------------------


def new_condition(type_: str, status: str, reason: str, message: str, now: dt.datetime) -> Obj:
    stamp = _now_str(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def get_condition(status: Mapping[str, Any], type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Record `cond` unless an identical status+reason is already there; a condition whose
    status did not change keeps its lastTransitionTime. The new one goes last."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = dict(cond, lastTransitionTime=current.get("lastTransitionTime"))
    others = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"] = [*others, cond]


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def deployment_complete(deploy: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = spec_replicas(deploy)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(_meta(deploy).get("generation") or 0))


def deployment_progressing(deploy: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """Any sign of progress since the last recorded status: more updated, ready or
    available replicas, or fewer old ones."""
    old = _status(deploy)

    def n(s: Mapping[str, Any], k: str) -> int:
        return int(s.get(k) or 0)

    old_old = n(old, "replicas") - n(old, "updatedReplicas")
    new_old = n(new_status, "replicas") - n(new_status, "updatedReplicas")
    return (n(new_status, "updatedReplicas") > n(old, "updatedReplicas") or new_old < old_old
            or n(new_status, "readyReplicas") > n(old, "readyReplicas")
            or n(new_status, "availableReplicas") > n(old, "availableReplicas"))


def deployment_timed_out(deploy: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime) -> bool:
    if not has_progress_deadline(deploy):
        return False
    cond = get_condition(status, COND_PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    deadline = int(_spec(deploy).get("progressDeadlineSeconds") or 0)
    return since + dt.timedelta(seconds=deadline) < now


def requeue_for_deadline(deploy: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime) -> float | None:
    """Seconds until the progress deadline of the rollout recorded in `status` should be
    checked, or None when waiting cannot change anything: no deadline set, the rollout
    complete, already timed out, or no rollout under way (the Progressing reason is still
    NewReplicaSetAvailable: a complete Deployment that lost availability is not checked
    against its deadline, as in Kubernetes).

    Never 0: a deadline already past is recorded as ProgressDeadlineExceeded by the pass
    that sees it, so the check is due a second after the deadline (the second absorbs the
    whole-second timestamps), not now and again and again."""
    cond = get_condition(status, COND_PROGRESSING)
    if (not has_progress_deadline(deploy) or cond is None or deployment_complete(deploy, status)
            or cond.get("reason") in (TIMED_OUT, NEW_RS_AVAILABLE)):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = since + dt.timedelta(seconds=int(_spec(deploy).get("progressDeadlineSeconds") or 0))
    return max((deadline - now).total_seconds(), 0.0) + 1


def rollout_under_way(deploy: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a rollout is still moving towards its goal: not paused, not complete, not
    timed out, and not a finished rollout that merely lost available pods (ReplicaSet
    events, not the clock, bring those forward)."""
    if _spec(deploy).get("paused") or deployment_complete(deploy, status):
        return False
    cond = get_condition(status, COND_PROGRESSING)
    if cond is None:
        return True
    if cond.get("reason") == TIMED_OUT:
        return False
    settled = int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
    return not (cond.get("reason") == NEW_RS_AVAILABLE and settled)


_STATUS_COUNTERS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                    "unavailableReplicas", "terminatingReplicas")


def _compact_status(status: Obj) -> Obj:
    """Zero counters are left out of a status, as the API's omitempty fields are."""
    for key in _STATUS_COUNTERS:
        if key in status and not status[key]:
            del status[key]
    if not status.get("conditions"):
        status.pop("conditions", None)
    return status


def calculate_status(all_rss: list[Obj], new_rs: Obj | None, deploy: Mapping[str, Any],
                     conditions_from: Mapping[str, Any], now: dt.datetime) -> Obj:
    """The deployment's status from its ReplicaSets' statuses, with the Available
    condition recomputed and the other conditions carried over."""
    available = _sum_status(all_rss, "availableReplicas")
    unavailable = max(_sum_spec(all_rss) - available, 0)
    status: Obj = {
        "observedGeneration": int(_meta(deploy).get("generation") or 0),
        "replicas": _sum_status(all_rss, "replicas"),
        "updatedReplicas": _status_int(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": _sum_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if any("terminatingReplicas" in _status(rs) for rs in all_rss):
        status["terminatingReplicas"] = _sum_status(all_rss, "terminatingReplicas")
    if _status(deploy).get("collisionCount") is not None:
        status["collisionCount"] = _status(deploy)["collisionCount"]
    conds = copy.deepcopy(list(conditions_from.get("conditions") or []))
    if conds:
        status["conditions"] = conds
    if available >= spec_replicas(deploy) - max_unavailable(deploy):
        set_condition(status, new_condition(COND_AVAILABLE, "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(COND_AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def _replica_failure(all_rss: list[Obj], new_rs: Obj | None) -> Obj | None:
    ordered = ([new_rs] if new_rs is not None else []) + [rs for rs in all_rss if rs is not new_rs]
    for rs in ordered:
        for c in _status(rs).get("conditions") or []:
            if c.get("type") == COND_REPLICA_FAILURE:
                return {"type": COND_REPLICA_FAILURE, "status": c.get("status", "True"),
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"),
                        "reason": c.get("reason", ""), "message": c.get("message", "")}
    return None


# -- the reconcile pass ----------------------------------------------------------------


def _new_rs_object(deploy: Mapping[str, Any], collision_count: int | None) -> Obj:
    template = copy.deepcopy(dict(_spec(deploy).get("template") or {}))
    h = pod_template_hash(template, collision_count)
    tmeta = template.setdefault("metadata", {})
    labels = dict(tmeta.get("labels") or {})
    labels[HASH_LABEL] = h
    tmeta["labels"] = labels
    selector = copy.deepcopy(dict(_spec(deploy).get("selector") or {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{_meta(deploy).get('name')}-{h}", "namespace": _meta(deploy).get("namespace"),
                     "labels": dict(labels), "annotations": {},
                     "ownerReferences": [controller_reference(deploy)]},
        "spec": {"replicas": 0, "minReadySeconds": int(_spec(deploy).get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }


class _Pass:
    """Working state of one reconcile pass: the deployment's status as it is being
    rewritten and our latest idea of each ReplicaSet after the changes planned so far."""

    def __init__(self, deploy: Obj, rss: list[Obj], now: dt.datetime) -> None:
        self.d = deploy
        self.now = now
        self.rss: list[Obj] = [copy.deepcopy(rs) for rs in rss]
        self.status: Obj = copy.deepcopy(dict(_status(deploy)))
        self.revision: str | None = (_meta(deploy).get("annotations") or {}).get(REVISION)
        self.plan = Plan()
        self.new_status: Obj | None = None
        # Only a rollout checks the progress deadline; paused deployments and plain resizes
        # never time out.
        self.rolling_out = False

    # -- ReplicaSet bookkeeping

    def split(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (creating it if asked) and the old ones, with revisions synced."""
        new_rs = find_new_replicaset(self.d, self.rss)
        old = [rs for rs in self.rss if rs is not new_rs]
        new_revision = max_revision(old) + 1
        if new_rs is not None:
            changed = set_new_rs_annotations(self.d, new_rs, new_revision, exists=True)
            min_ready = int(_spec(self.d).get("minReadySeconds") or 0)
            if int(_spec(new_rs).get("minReadySeconds") or 0) != min_ready:
                new_rs["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                self._update(new_rs, None)
            self.revision = _annotations(new_rs).get(REVISION)
            if has_progress_deadline(self.d) and get_condition(self.status, COND_PROGRESSING) is None:
                set_condition(self.status, new_condition(
                    COND_PROGRESSING, "True", FOUND_NEW_RS,
                    f'Found new replica set "{_meta(new_rs).get("name")}"', self.now))
            return new_rs, old
        if not create:
            return None, old
        new_rs = _new_rs_object(self.d, _status(self.d).get("collisionCount"))
        new_rs["spec"]["replicas"] = new_rs_new_replicas(self.d, [*old, new_rs], new_rs)
        set_new_rs_annotations(self.d, new_rs, new_revision, exists=False)
        new_rs["metadata"]["creationTimestamp"] = _now_str(self.now)
        count = new_rs["spec"]["replicas"]
        name = new_rs["metadata"]["name"]
        event = f"Scaled up replica set {name} from 0 to {count}" if count > 0 else None
        body = copy.deepcopy(new_rs)
        del body["metadata"]["creationTimestamp"]
        self.plan.actions.append(CreateReplicaSet(body, event))
        self.rss.append(new_rs)
        self.revision = str(new_revision)
        if has_progress_deadline(self.d):
            set_condition(self.status, new_condition(COND_PROGRESSING, "True", NEW_RS_CREATED,
                                                     f'Created new replica set "{name}"', self.now))
        return new_rs, old

    def _update(self, rs: Obj, event: str | None) -> None:
        self.plan.actions.append(UpdateReplicaSet(
            _meta(rs).get("name") or "", spec_replicas(rs), dict(_annotations(rs)),
            int(_spec(rs).get("minReadySeconds") or 0), event))

    def scale(self, rs: Obj, new_scale: int) -> bool:
        """Set `rs` to `new_scale` replicas and refresh its desired/max annotations; True if
        the size changed."""
        old_scale = spec_replicas(rs)
        size_changed = old_scale != new_scale
        replicas = spec_replicas(self.d)
        ann_changed = set_replicas_annotations(rs, replicas, replicas + max_surge(self.d))
        if not size_changed and not ann_changed:
            return False
        rs.setdefault("spec", {})["replicas"] = new_scale
        event = None
        if size_changed:
            direction = "up" if new_scale > old_scale else "down"
            event = f"Scaled {direction} replica set {_meta(rs).get('name')} from {old_scale} to {new_scale}"
        self._update(rs, event)
        return size_changed

    def scale_if_needed(self, rs: Obj, new_scale: int) -> bool:
        if spec_replicas(rs) == new_scale:
            return False
        return self.scale(rs, new_scale)

    # -- the paths of syncDeployment

    def sync(self) -> None:
        """Paused deployments and plain resizes: scale without rolling anything out."""
        new_rs, old = self.split(create=False)
        self._proportional_scale(new_rs, old)
        if _spec(self.d).get("paused"):
            self._cleanup(old)
        self._status_only(new_rs, old)

    def _proportional_scale(self, new_rs: Obj | None, old: list[Obj]) -> None:
        replicas = spec_replicas(self.d)
        target = _active_or_latest(new_rs, old)
        if target is not None:
            self.scale_if_needed(target, replicas)
            return
        if _is_saturated(self.d, new_rs):
            for rs in _active(old):
                self.scale_if_needed(rs, 0)
            return
        if not is_rolling(self.d):
            return
        active = _active([*old, *([new_rs] if new_rs is not None else [])])
        allowed = replicas + max_surge(self.d) if replicas > 0 else 0
        to_add = allowed - _sum_spec(active)
        if to_add != 0:
            # The biggest first; among equals, newer ones first when growing and older ones
            # first when shrinking (two stable sorts).
            active.sort(key=_created_key, reverse=to_add > 0)
            active.sort(key=lambda rs: -spec_replicas(rs))
        added = 0
        sizes: list[int] = []
        for rs in active:
            if to_add != 0:
                part = get_proportion(rs, self.d, to_add, added)
                sizes.append(spec_replicas(rs) + part)
                added += part
            else:
                sizes.append(spec_replicas(rs))
        for i, rs in enumerate(active):
            size = sizes[i]
            if i == 0 and to_add != 0:
                size += to_add - added
                size = max(size, 0)
            self.scale(rs, size)

    def is_scaling_event(self) -> bool:
        new_rs = find_new_replicaset(self.d, self.rss)
        everything = [rs for rs in self.rss if rs is not new_rs] + ([new_rs] if new_rs is not None else [])
        for rs in _active(everything):
            desired = _int_annotation(rs, DESIRED_REPLICAS)
            if desired is not None and desired != spec_replicas(self.d):
                return True
        return False

    def rolling(self) -> None:
        new_rs, old = self.split(create=True)
        assert new_rs is not None
        all_rss = [*old, new_rs]
        if self._reconcile_new(all_rss, new_rs):
            self._rollout_status(all_rss, new_rs)
            return
        if self._reconcile_old(all_rss, _active(old), new_rs):
            self._rollout_status(all_rss, new_rs)
            return
        if deployment_complete(self.d, _status(self.d)):
            self._cleanup(old)
        self._rollout_status(all_rss, new_rs)

    def _reconcile_new(self, all_rss: list[Obj], new_rs: Obj) -> bool:
        replicas = spec_replicas(self.d)
        if spec_replicas(new_rs) == replicas:
            return False
        if spec_replicas(new_rs) > replicas:
            return self.scale_if_needed(new_rs, replicas)
        return self.scale_if_needed(new_rs, new_rs_new_replicas(self.d, all_rss, new_rs))

    def _reconcile_old(self, all_rss: list[Obj], old_active: list[Obj], new_rs: Obj) -> bool:
        if _sum_spec(old_active) == 0:
            return False
        all_pods = _sum_spec(all_rss)
        min_available = spec_replicas(self.d) - max_unavailable(self.d)
        new_unavailable = spec_replicas(new_rs) - _status_int(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # Unhealthy old replicas go first: removing them costs no availability.
        cleaned = 0
        for rs in sorted(old_active, key=_created_key):
            if cleaned >= max_scaled_down:
                break
            have = spec_replicas(rs)
            healthy = _status_int(rs, "availableReplicas")
            if have == 0 or have == healthy:
                continue
            down = min(max_scaled_down - cleaned, have - healthy)
            self.scale_if_needed(rs, have - down)
            cleaned += down
        scaled = self._scale_down_old_rolling([*old_active, new_rs], old_active)
        return cleaned + scaled > 0

    def _scale_down_old_rolling(self, all_rss: list[Obj], old_active: list[Obj]) -> int:
        min_available = spec_replicas(self.d) - max_unavailable(self.d)
        available = _sum_status(all_rss, "availableReplicas")
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in sorted(old_active, key=_created_key):
            if total >= budget:
                break
            have = spec_replicas(rs)
            if have == 0:
                continue
            down = min(have, budget - total)
            self.scale_if_needed(rs, have - down)
            total += down
        return total

    def recreate(self, pods_by_rs: Mapping[str, list[Obj]]) -> None:
        new_rs, old = self.split(create=False)
        all_rss = [*old, *([new_rs] if new_rs is not None else [])]
        scaled_down = False
        for rs in _active(old):
            if self.scale_if_needed(rs, 0):
                scaled_down = True
        if scaled_down:
            self._rollout_status(all_rss, new_rs)
            return
        if _old_pods_running(new_rs, old, pods_by_rs):
            self._rollout_status(all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old = self.split(create=True)
            all_rss = [*old, new_rs] if new_rs is not None else old
        if new_rs is not None:
            self.scale_if_needed(new_rs, spec_replicas(self.d))
        if deployment_complete(self.d, _status(self.d)):
            self._cleanup(old)
        self._rollout_status(all_rss, new_rs)

    def _cleanup(self, old: list[Obj]) -> None:
        """Delete the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        limit = _spec(self.d).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old if not _meta(rs).get("deletionTimestamp")]
        excess = len(alive) - int(limit)
        if excess <= 0:
            return
        alive.sort(key=lambda rs: (revision_of(rs), _created_key(rs)))
        # A ReplicaSet changed earlier in this pass is still settling; it can go next time.
        touched = {a.name for a in self.plan.actions if isinstance(a, UpdateReplicaSet)}
        for rs in alive[:excess]:
            if (_status_int(rs, "replicas") != 0 or spec_replicas(rs) != 0
                    or int(_meta(rs).get("generation") or 0) > _status_int(rs, "observedGeneration")):
                continue
            if _meta(rs).get("name") in touched:
                continue
            self.plan.actions.append(DeleteReplicaSet(_meta(rs).get("name") or "", _meta(rs).get("uid") or ""))

    # -- status

    def check_paused_conditions(self) -> None:
        if not has_progress_deadline(self.d):
            return
        cond = get_condition(self.status, COND_PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        paused = bool(_spec(self.d).get("paused"))
        if paused and not paused_cond:
            set_condition(self.status, new_condition(COND_PROGRESSING, "Unknown", PAUSED,
                                                     "Deployment is paused", self.now))
        elif not paused and paused_cond:
            set_condition(self.status, new_condition(COND_PROGRESSING, "Unknown", RESUMED,
                                                     "Deployment is resumed", self.now))

    def _status_only(self, new_rs: Obj | None, old: list[Obj]) -> None:
        all_rss = [*old, *([new_rs] if new_rs is not None else [])]
        self.new_status = calculate_status(all_rss, new_rs, self.d, self.status, self.now)

    def _rollout_status(self, all_rss: list[Obj], new_rs: Obj | None) -> None:
        self.rolling_out = True
        status = calculate_status(all_rss, new_rs, self.d, self.status, self.now)
        if not has_progress_deadline(self.d):
            remove_condition(status, COND_PROGRESSING)
        current = get_condition(self.status, COND_PROGRESSING)
        complete_before = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                           and current is not None and current.get("reason") == NEW_RS_AVAILABLE)
        name = _meta(new_rs).get("name") if new_rs is not None else None
        subject = f'ReplicaSet "{name}"' if name else f'Deployment "{_meta(self.d).get("name")}"'
        if has_progress_deadline(self.d) and not complete_before:
            if deployment_complete(self.d, status):
                set_condition(status, new_condition(COND_PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                    f"{subject} has successfully progressed.", self.now))
            elif deployment_progressing(self.d, status):
                cond = new_condition(COND_PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", self.now)
                # Progress refreshes lastUpdateTime even when the reason stays the same: that is
                # what pushes the progress deadline back.
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, COND_PROGRESSING)
                set_condition(status, cond)
            elif deployment_timed_out(self.d, status, self.now):
                set_condition(status, new_condition(COND_PROGRESSING, "False", TIMED_OUT,
                                                    f"{subject} has timed out progressing.", self.now))
        failure = _replica_failure(all_rss, new_rs)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, COND_REPLICA_FAILURE)
        self.new_status = status

    def finish(self) -> Plan:
        plan = self.plan
        current_rev = (_meta(self.d).get("annotations") or {}).get(REVISION)
        if self.revision is not None and self.revision != current_rev:
            plan.annotations[REVISION] = self.revision
        final = self.new_status
        if final is None:
            final = calculate_status(self.rss, find_new_replicaset(self.d, self.rss), self.d, self.status, self.now)
        final = _compact_status(final)
        if _normalize(final) != _normalize(_compact_status(copy.deepcopy(dict(_status(self.d))))):
            plan.status = final
        if self.rolling_out:
            plan.requeue_after = requeue_for_deadline(self.d, final, self.now)
        plan.in_progress = rollout_under_way(self.d, final)
        return plan


def _active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    """The ReplicaSet a plain resize applies to: the only active one, or the newest one
    when none is active; None when several are active (that calls for proportions)."""
    if new_rs is None and not old:
        return None
    newest_first = sorted(old, key=_created_key, reverse=True)
    active = _active([*newest_first, *([new_rs] if new_rs is not None else [])])
    if not active:
        if new_rs is not None:
            return new_rs
        return newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def _is_saturated(deploy: Mapping[str, Any], rs: Obj | None) -> bool:
    if rs is None:
        return False
    replicas = spec_replicas(deploy)
    return (_int_annotation(rs, DESIRED_REPLICAS) == replicas and spec_replicas(rs) == replicas
            and _status_int(rs, "availableReplicas") == replicas)


def _old_pods_running(new_rs: Obj | None, old: list[Obj], pods_by_rs: Mapping[str, list[Obj]]) -> bool:
    """Recreate waits until no pod of an old ReplicaSet is left running."""
    if _sum_status(old, "replicas") > 0:
        return True
    new_uid = _meta(new_rs).get("uid") if new_rs is not None else None
    for uid, pods in pods_by_rs.items():
        if new_uid is not None and uid == new_uid:
            continue
        for pod in pods:
            if _status(pod).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


def _selects_everything(deploy: Mapping[str, Any]) -> bool:
    sel = _spec(deploy).get("selector")
    return isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions")


def plan_deployment(deploy: Obj, replicasets: list[Obj], pods_by_rs: Mapping[str, list[Obj]],
                    now: dt.datetime) -> Plan:
    """One reconcile pass of `deploy`, given the ReplicaSets it controls (already claimed)
    and their pods by ReplicaSet uid (only Recreate looks at pods)."""
    if _selects_everything(deploy):
        plan = Plan(warnings=[("SelectingAll",
                               "This deployment is selecting all pods. A non-empty selector is required.")])
        generation = int(_meta(deploy).get("generation") or 0)
        if int(_status(deploy).get("observedGeneration") or 0) < generation:
            plan.status = dict(copy.deepcopy(dict(_status(deploy))), observedGeneration=generation)
        return plan
    p = _Pass(deploy, replicasets, now)
    if _meta(deploy).get("deletionTimestamp"):
        new_rs, old = p.split(create=False)
        p._status_only(new_rs, old)
        return p.finish()
    p.check_paused_conditions()
    if _spec(deploy).get("paused"):
        p.sync()
    elif p.is_scaling_event():
        p.sync()
    elif not is_rolling(deploy):
        p.recreate(pods_by_rs)
    else:
        p.rolling()
    return p.finish()
