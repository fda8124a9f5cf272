"""The ClusterRole aggregation controller: an aggregated ClusterRole's rules are the union
of the rules of the ClusterRoles its `aggregationRule` selects.

As upstream's clusterrole-aggregation controller: any ClusterRole change makes every
aggregated role look again; the rules are gathered selector by selector, the selected
roles in name order, each rule once (an aggregated role never selects itself), and the
role is written only when its rules differ. `aggregated_rules` is the pure decision.
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes.api.selectors import label_selector_matcher
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import Resource
from kybernetes.client.workqueue import run_workers

log = logging.getLogger(__name__)

CLUSTERROLES = Resource.for_kind("rbac.authorization.k8s.io/v1", "ClusterRole")
FIELD_MANAGER = "clusterrole-aggregation-controller"

Obj = dict[str, Any]


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def aggregated_rules(role: Obj, cluster_roles: list[Obj]) -> list[Obj] | None:
    """The rules `role` should hold, or None when it aggregates nothing."""
    rule = role.get("aggregationRule")
    selectors = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
    if not isinstance(selectors, list):
        return None
    rules: list[Obj] = []
    ordered = sorted(cluster_roles, key=_name)
    for sel in selectors:
        matches = label_selector_matcher(sel)
        if matches is None:
            continue
        for other in ordered:
            if _name(other) == _name(role):
                continue
            if not matches((other.get("metadata") or {}).get("labels") or {}):
                continue
            for r in other.get("rules") or []:
                if isinstance(r, dict) and r not in rules:
                    rules.append(r)
    return rules


class ClusterRoleAggregationController:
    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.roles = factory.informer(CLUSTERROLES)
        self.queue = WorkQueue("clusterrole-aggregation")
        self.roles.add_handler(on_add=self._changed, on_update=lambda _old, new: self._changed(new),
                               on_delete=self._changed)

    def _changed(self, _obj: Obj) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule"):
                self.queue.add(_name(role))

    async def run(self, workers: int = 1) -> None:
        await run_workers(self.queue, self.sync, workers, "aggregated ClusterRole", logger=log)

    async def sync(self, name: str) -> Result:
        role = self.roles.get(None, name)
        if role is None:
            return Result.done()
        rules = aggregated_rules(role, self.roles.list())
        if rules is None or rules == (role.get("rules") or []):
            return Result.done()
        try:
            await self.client.update(CLUSTERROLES, None, name, {**role, "rules": rules},
                                     field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 404:  # a 409 is retried with the informer's newer copy
                raise
        return Result.done()
