"""ControllerRevision history shared by the DaemonSet and StatefulSet controllers, pure:
what a revision stores (a strategic merge patch putting the pod template back whole,
which `kubectl rollout undo` applies as it is), whether one holds an owner's current
template, the revision to create, the one to renumber when a rollback brings an old
template back, and the template a revision restores, as Kubernetes'
pkg/controller/history and the two controllers' getPatch / ApplyRevision decide them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.controllers.deployment_plan import pod_template_hash
from kybernetes.controllers.podutil import controller_ref, owner_reference

Obj = dict[str, Any]

HASH_LABEL = "controller-revision-hash"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _deep(value: Any) -> Any:
    # A JSON round trip is the cheapest deep copy of plain API data.
    return orjson.loads(orjson.dumps(value))


def revision_data(owner: Mapping[str, Any]) -> Obj:
    """What a revision stores (getPatch): a strategic merge patch that puts this template
    back whole, which `kubectl rollout undo` applies as it is."""
    template = _deep(dict(_spec(owner).get("template") or {}))
    template["$patch"] = "replace"
    # Keys sorted at every level, as Go writes a map: kubectl compares these bytes with its
    # own rendering of the owner to skip a rollback to the template already running.
    return orjson.loads(orjson.dumps({"spec": {"template": template}}, option=orjson.OPT_SORT_KEYS))


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def _data(revision: Mapping[str, Any]) -> Any:
    data = revision.get("data")
    if isinstance(data, (str, bytes)):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    return data


def revision_matches(owner: Mapping[str, Any], revision: Mapping[str, Any]) -> bool:
    """Whether a revision holds `owner`'s current template (Match); empty values aside,
    which the API treats as absent."""
    return _normalized(_data(revision)) == _normalized(revision_data(owner))


def revision_template(revision: Mapping[str, Any]) -> Obj | None:
    """The pod template a revision restores (ApplyRevision of a getPatch patch), or None
    when the revision holds no template."""
    data = _data(revision)
    template = ((data or {}).get("spec") or {}).get("template") if isinstance(data, dict) else None
    if not isinstance(template, dict):
        return None
    out = _deep(template)
    out.pop("$patch", None)
    return out


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def revision_hash(owner: Mapping[str, Any]) -> str:
    return pod_template_hash(_spec(owner).get("template"), (owner.get("status") or {}).get("collisionCount"))


def new_revision(owner: Mapping[str, Any], number: int, kind: str) -> Obj:
    """The ControllerRevision snapshotting `owner`'s template: named `<owner>-<hash>`,
    labelled with the template labels and the hash, carrying the owner's annotations (so
    `kubectl rollout history` shows the change cause)."""
    meta = _meta(owner)
    hash_ = revision_hash(owner)
    labels = dict(((_spec(owner).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = hash_
    rev_meta: Obj = {"name": f"{meta.get('name', '')}-{hash_}", "namespace": meta.get("namespace", ""),
                     "labels": labels, "ownerReferences": [owner_reference(owner, "apps/v1", kind)]}
    if meta.get("annotations"):
        rev_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rev_meta,
            "data": revision_data(owner), "revision": number}


@dataclass
class History:
    """The revision history of an owner as found: the current revision (if one exists),
    what to create or renumber, duplicates to fold, and the old revisions."""

    current: Obj | None = None
    create: Obj | None = None
    renumber_to: int | None = None
    duplicates: list[Obj] = field(default_factory=list)
    old: list[Obj] = field(default_factory=list)
    label: list[Obj] = field(default_factory=list)  # revisions missing the hash label


def plan_history(owner: Mapping[str, Any], revisions: Iterable[Obj], kind: str) -> History:
    """The revisions `owner` controls split into the one holding its current template and
    the old ones; a new revision numbered one past the old ones when none matches, or the
    matching one renumbered to that when a rollback brought an old template back."""
    uid = _meta(owner).get("uid")
    history = History()
    current: list[Obj] = []
    for rev in revisions:
        ref = controller_ref(rev)
        if ref is None or ref.get("uid") != uid:
            continue
        if HASH_LABEL not in _labels(rev):
            history.label.append(rev)
        (current if revision_matches(owner, rev) else history.old).append(rev)
    next_number = max((revision_number(r) for r in history.old), default=0) + 1
    if not current:
        history.create = new_revision(owner, next_number, kind)
        return history
    current.sort(key=lambda r: (revision_number(r), _name(r)))
    history.current = current[-1]
    history.duplicates = current[:-1]
    if revision_number(history.current) < next_number:
        history.renumber_to = next_number
    return history


def current_hash(revision: Mapping[str, Any]) -> str:
    return _labels(revision).get(HASH_LABEL) or _name(revision)
