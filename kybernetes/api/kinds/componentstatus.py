"""core/v1 ComponentStatuses (`kubectl get cs`): the health of the scheduler, the
controller manager and the store, computed on every read and never stored.

kube-apiserver probes the components' health ports; here the scheduler and the
controller manager are separate processes that hold leader-election Leases in
kube-system, so a component is healthy while its Lease is held and renewed in time.
The kind is deprecated upstream (since 1.19) and the server says so in a warning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import column, get_path, list_at, name_column, name_of

Obj = dict[str, Any]
Cells = list[Any]

COMPONENT_STATUS = KindRef("", "ComponentStatus")
DEPRECATION_WARNING = "v1 ComponentStatus is deprecated in v1.19+"
# component name -> the Lease (in kube-system) its leader holds.
_LEASED_COMPONENTS = (("controller-manager", "kube-controller-manager"), ("scheduler", "kube-scheduler"))
STORE_COMPONENT = "etcd-0"
# Slack beyond the lease duration before a component counts as gone: a busy box delays renewals.
_GRACE_SECONDS = 5.0


class ComponentReader(Protocol):
    """What computing the statuses needs from the server."""

    def lease(self, namespace: str, name: str) -> Obj | None:
        """The Lease object, None when there is none."""
        ...

    def store_healthy(self) -> bool:
        ...


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def lease_problem(lease: Obj | None, now: datetime) -> str | None:
    """Why a component holding `lease` is not healthy, None when it is."""
    if lease is None:
        return "no leader: its lease does not exist"
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return "no leader: its lease is not held"
    renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or 15
    if renewed is None:
        return "no leader: its lease was never renewed"
    age = (now - renewed).total_seconds()
    if age > float(duration) + _GRACE_SECONDS:
        return f"the leader has not renewed its lease for {int(age)}s"
    return None


def _status(name: str, problem: str | None) -> Obj:
    condition: Obj = {"type": "Healthy", "status": "True" if problem is None else "False"}
    if problem is None:
        condition["message"] = "ok"
    else:
        condition["error"] = problem
    return {"metadata": {"name": name, "creationTimestamp": None}, "conditions": [condition]}


def component_statuses(reader: ComponentReader, now: datetime) -> list[Obj]:
    """Every ComponentStatus, in the order kube-apiserver lists them."""
    out = [_status(component, lease_problem(reader.lease("kube-system", lease), now))
           for component, lease in _LEASED_COMPONENTS]
    out.append(_status(STORE_COMPONENT, None if reader.store_healthy() else "the store does not answer"))
    return out


class ComputedKindStrategy(KindStrategy):
    """A kind whose objects the server computes on read (get and list only)."""

    warning: str | None = None

    def objects(self, info: ResourceInfo, reader: Any, now: datetime) -> list[Obj]:
        raise NotImplementedError


class ComponentStatusStrategy(ComputedKindStrategy):
    refs = (COMPONENT_STATUS,)
    warning = DEPRECATION_WARNING

    def objects(self, info: ResourceInfo, reader: ComponentReader, now: datetime) -> list[Obj]:
        return component_statuses(reader, now)

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("Status", "Status of the component conditions"),
                column("Message", "Message of the component conditions"),
                column("Error", "Error of the component conditions")]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        status, message, error = "Unknown", "", ""
        for cond in list_at(obj, "conditions"):
            if isinstance(cond, dict) and cond.get("type") == "Healthy":
                status = "Healthy" if cond.get("status") == "True" else "Unhealthy"
                message, error = str(cond.get("message") or ""), str(cond.get("error") or "")
        return [name_of(obj), status, message, error]


def named(objects: list[Obj], name: str) -> Obj | None:
    return next((o for o in objects if get_path(o, "metadata", "name") == name), None)

