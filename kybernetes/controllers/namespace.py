"""The namespace controller: empties a namespace being deleted, then releases it.

A deleted namespace keeps its `kubernetes` spec finalizer (and phase Terminating)
until this controller has deleted every namespaced object in it, for every
resource the server serves (discovered, so custom resources are included).
Pods go first and everything else only once no pod is left, as Kubernetes does
since ordered namespace deletion, so a workload never outlives its policies,
secrets or service accounts. Progress is reported in the namespace's status
conditions in Kubernetes' words; objects with finalizers hold the namespace
until their finalizers are removed. When nothing is left the controller removes
`kubernetes` through the `namespaces/finalize` subresource and the server
deletes the namespace once no finalizer remains.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.timefmt import now_rfc3339
from kybernetes.client import ApiError, Client, Informers, Resource, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import NAMESPACES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.apidiscovery import Discovery, ServedResource, discover

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
FIELD_MANAGER = "namespace-controller"

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONDITION_ORDER = (DISCOVERY_FAILURE, PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING, FINALIZERS_REMAINING)


# -- decisions (pure) -------------------------------------------------------------------------


def needs_finalizing(ns: dict[str, Any]) -> bool:
    """A namespace this controller must work on: being deleted and still held by `kubernetes`."""
    meta = ns.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and FINALIZER in ((ns.get("spec") or {}).get("finalizers") or ())


def finalized(ns: dict[str, Any]) -> dict[str, Any]:
    """The namespace as PUT to `namespaces/<name>/finalize`: `kubernetes` removed from spec.finalizers."""
    out = dict(ns)
    spec = dict(ns.get("spec") or {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or () if f != FINALIZER]
    out["spec"] = spec
    return out


def content_resources(resources: Iterable[ServedResource]) -> list[ServedResource]:
    """Namespaced resources whose objects can be listed and deleted one way or another."""
    return [s for s in resources if s.resource.namespaced and s.supports("list")
            and (s.supports("delete") or s.supports("deletecollection"))]


def deletion_phases(resources: Iterable[ServedResource]) -> list[list[ServedResource]]:
    """Pods first, then the rest: the second phase only starts once the first is empty."""
    pods = [s for s in resources if s.resource.group == "" and s.resource.plural == "pods"]
    rest = [s for s in resources if s not in pods]
    return [p for p in (pods, rest) if p]


def resource_label(served: ServedResource) -> str:
    """How Kubernetes names a resource in the conditions: `<resource>.<group>` (`pods.`)."""
    return f"{served.resource.plural}.{served.resource.group}"


@dataclass
class ContentReport:
    """What one pass over a namespace found."""

    remaining: Counter[str] = field(default_factory=Counter)   # resource label → objects left
    finalizers: Counter[str] = field(default_factory=Counter)  # finalizer → objects carrying it
    failures: list[str] = field(default_factory=list)          # errors deleting or listing content
    discovery_failures: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.remaining and not self.failures and not self.discovery_failures

    def count(self, served: ServedResource, items: Iterable[dict[str, Any]]) -> None:
        n = 0
        for obj in items:
            n += 1
            for f in (obj.get("metadata") or {}).get("finalizers") or ():
                self.finalizers[f] += 1
        if n:
            self.remaining[resource_label(served)] += n


def _aggregate(errors: list[str]) -> str:
    # Kubernetes prints one error as itself and several as a bracketed list.
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def build_conditions(report: ContentReport) -> list[dict[str, str]]:
    """The five deletion conditions (without timestamps) for a report, in Kubernetes' words."""
    conds = []
    if report.discovery_failures:
        listed = ", ".join(f"{gv}: {why}" for gv, why in sorted(report.discovery_failures.items()))
        conds.append(_cond(DISCOVERY_FAILURE, "True", "DiscoveryFailed",
                           f"Discovery failed for some groups, {len(report.discovery_failures)} failing: "
                           f"unable to retrieve the complete list of server APIs: {listed}"))
    else:
        conds.append(_cond(DISCOVERY_FAILURE, "False", "ResourcesDiscovered", "All resources successfully discovered"))
    conds.append(_cond(PARSING_FAILURE, "False", "ParsedGroupVersions", "All legacy kube types successfully parsed"))
    if report.failures:
        conds.append(_cond(CONTENT_FAILURE, "True", "ContentDeletionFailed",
                           f"Failed to delete all resource types, {len(report.failures)} remaining: "
                           f"{_aggregate(report.failures)}"))
    else:
        conds.append(_cond(CONTENT_FAILURE, "False", "ContentDeleted",
                           "All content successfully deleted, may be waiting on finalization"))
    if report.remaining:
        listed = ", ".join(f"{label} has {n} resource instances" for label, n in sorted(report.remaining.items()))
        conds.append(_cond(CONTENT_REMAINING, "True", "SomeResourcesRemain",
                           f"Some resources are remaining: {listed}"))
    else:
        conds.append(_cond(CONTENT_REMAINING, "False", "ContentRemoved", "All content successfully removed"))
    if report.finalizers:
        listed = ", ".join(f"{fin} in {n} resource instances" for fin, n in sorted(report.finalizers.items()))
        conds.append(_cond(FINALIZERS_REMAINING, "True", "SomeFinalizersRemain",
                           f"Some content in the namespace has finalizers remaining: {listed}"))
    else:
        conds.append(_cond(FINALIZERS_REMAINING, "False", "ContentHasNoFinalizers",
                           "All content-preserving finalizers finished"))
    return conds


def _cond(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def merge_conditions(old: Iterable[dict[str, Any]], new: Iterable[dict[str, str]],
                     now: str) -> list[dict[str, Any]]:
    """Conditions to store: `lastTransitionTime` moves only when a condition's status
    changes; conditions of other types that someone else set are kept."""
    previous = {c.get("type"): c for c in old or () if isinstance(c, dict)}
    out: list[dict[str, Any]] = []
    seen = set()
    for c in new:
        prev = previous.get(c["type"])
        stamp = prev.get("lastTransitionTime") if prev and prev.get("status") == c["status"] else None
        out.append({**c, "lastTransitionTime": stamp or now})
        seen.add(c["type"])
    out += [c for t, c in previous.items() if t not in seen]
    return out


def conditions_differ(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]) -> bool:
    def key(conds: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conds or ())
    return key(old) != key(new)


def retry_delay(attempt: int, base: float = 0.1, cap: float = 5.0) -> float:
    """How long to wait before looking at a namespace whose content is still going away."""
    return min(base * (2 ** attempt), cap)


# -- the controller (thin async shell) ---------------------------------------------------------


class NamespaceController:
    def __init__(self, client: Client, factory: Informers, max_retry_delay: float = 5.0) -> None:
        self.client = client
        self.namespaces = factory.informer(NAMESPACES)
        self.queue = WorkQueue("namespace")
        self.max_retry_delay = max_retry_delay
        self._attempts: dict[str, int] = {}
        add_object_handler(self.namespaces, self._on_change, deletes=False)
        self.namespaces.add_handler(on_delete=lambda o: self._attempts.pop((o.get("metadata") or {}).get("name"),
                                                                           None))

    def _on_change(self, ns: dict[str, Any]) -> None:
        if needs_finalizing(ns):
            self.queue.add(ns["metadata"]["name"])

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self._process, workers, "namespace", (), level=logging.INFO, logger=log)

    async def _process(self, name: str) -> Result:
        # Content still being deleted is not a failure: poll again on our own, gentler schedule.
        if await self.sync(name):
            self._attempts.pop(name, None)
            return Result.done()
        n = self._attempts.get(name, 0)
        self._attempts[name] = n + 1
        return Result.after(retry_delay(n, cap=self.max_retry_delay))

    async def sync(self, name: str) -> bool:
        """One pass over a terminating namespace. True when there is nothing left to do."""
        ns = self.namespaces.get(None, name)
        if ns is None or not needs_finalizing(ns):
            return True
        found = await discover(self.client)
        report = await self.delete_content(name, found)
        await self._report(ns, report)
        if not report.empty:
            return False
        await self._finalize(name)
        return True

    async def delete_content(self, name: str, found: Discovery) -> ContentReport:
        report = ContentReport(discovery_failures=dict(found.failures))
        for phase in deletion_phases(content_resources(found.resources)):
            for served in phase:
                await self._delete_resource(name, served, report)
            if report.remaining or report.failures:
                break  # the next phase waits until this one is empty
        return report

    async def _delete_resource(self, namespace: str, served: ServedResource, report: ContentReport) -> None:
        res = served.resource
        try:
            left = await self.client.list(res, namespace)
            # Only objects not yet being deleted are deleted (again): repeating the DELETE of a
            # terminating pod would restart its grace period on some servers.
            fresh = [o for o in left.get("items") or [] if not (o.get("metadata") or {}).get("deletionTimestamp")]
            if fresh:
                if served.supports("deletecollection"):
                    await self.client.delete_collection(res, namespace, propagation_policy="Background")
                else:
                    for obj in fresh:
                        await self._delete_one(res, namespace, obj)
                left = await self.client.list(res, namespace)
        except ApiError as e:
            if e.code in (404, 405):
                return  # served no more (a custom resource whose definition went away)
            report.failures.append(f"{resource_label(served)}: {e.message or e.reason}")
            return
        report.count(served, left.get("items") or [])

    async def _delete_one(self, res: Resource, namespace: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        try:
            await self.client.delete(res, namespace, meta["name"], propagation_policy="Background",
                                     preconditions={"uid": meta["uid"]} if meta.get("uid") else None)
        except ApiError as e:
            if e.code not in (404, 409):  # gone already, or replaced by a newer object
                raise

    async def _report(self, ns: dict[str, Any], report: ContentReport) -> None:
        status = ns.get("status") or {}
        old = status.get("conditions") or []
        merged = merge_conditions(old, build_conditions(report), now_rfc3339())
        if status.get("phase") == "Terminating" and not conditions_differ(old, merged):
            return
        try:
            await self.client.patch(NAMESPACES, None, ns["metadata"]["name"],
                                    {"status": {"phase": "Terminating", "conditions": merged}}, "merge",
                                    subresource="status", field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 404:
                raise

    async def _finalize(self, name: str) -> None:
        try:
            live = await self.client.get(NAMESPACES, None, name)
        except ApiError as e:
            if e.code == 404:
                return
            raise
        if not needs_finalizing(live):
            return
        body = finalized(live)
        try:
            await self.client.update(NAMESPACES, None, name, body, subresource="finalize",
                                     field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404 and (e.details or {}).get("name") == name:
                return  # the namespace itself went away meanwhile
            if e.code not in (404, 405):
                raise
            # A server without namespaces/finalize: spec.finalizers through a plain patch.
            log.warning("namespace %s: no finalize subresource (%s); patching spec.finalizers", name, e)
            await self.client.patch(NAMESPACES, None, name,
                                    {"metadata": {"resourceVersion": live["metadata"].get("resourceVersion")},
                                     "spec": {"finalizers": body["spec"]["finalizers"]}}, "merge",
                                    field_manager=FIELD_MANAGER)
        log.info("namespace %s: content removed, finalized", name)
