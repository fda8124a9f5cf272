"""The service account controller: every active namespace has a `default` ServiceAccount.

Pods that name no service account run as `default`, so it must exist as soon as a
namespace does, and come back if someone deletes it. Terminating namespaces are
left alone: the server refuses new content in them anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import NAMESPACES, SERVICEACCOUNTS
from kybernetes.client.workqueue import run_workers

log = logging.getLogger(__name__)

DEFAULT_ACCOUNTS = ("default",)
FIELD_MANAGER = "serviceaccount-controller"


def namespace_active(ns: dict[str, Any] | None) -> bool:
    if ns is None or (ns.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (ns.get("status") or {}).get("phase", "Active") == "Active"


def missing_accounts(ns: dict[str, Any] | None, existing: Iterable[str],
                     wanted: Iterable[str] = DEFAULT_ACCOUNTS) -> list[str]:
    """Service accounts to create in a namespace: the wanted ones it lacks, if it is active."""
    if not namespace_active(ns):
        return []
    have = set(existing)
    return [name for name in wanted if name not in have]


class ServiceAccountController:
    def __init__(self, client: Client, factory: Informers,
                 service_accounts: Iterable[str] = DEFAULT_ACCOUNTS) -> None:
        self.client = client
        self.wanted = tuple(service_accounts)
        self.namespaces = factory.informer(NAMESPACES)
        self.accounts = factory.informer(SERVICEACCOUNTS)
        self.queue = WorkQueue("serviceaccount")
        add_object_handler(self.namespaces, self._on_namespace, deletes=False)
        self.accounts.add_handler(on_delete=self._on_account_deleted)

    def _on_namespace(self, ns: dict[str, Any]) -> None:
        if namespace_active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _on_account_deleted(self, sa: dict[str, Any]) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in self.wanted and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "serviceaccounts in", (), level=logging.INFO, logger=log)

    async def sync(self, namespace: str) -> Result:
        """Create what is missing in `namespace`."""
        ns = self.namespaces.get(None, namespace)
        existing = [(sa.get("metadata") or {}).get("name", "")
                    for sa in self.accounts.by_index("namespace", namespace)]
        created = []
        for name in missing_accounts(ns, existing, self.wanted):
            try:
                await self.client.create(SERVICEACCOUNTS, namespace, {"metadata": {"name": name}},
                                         field_manager=FIELD_MANAGER)
                created.append(name)
            except ApiError as e:
                # 409: the informer was behind; 403/404: the namespace is terminating or gone.
                if e.code in (409, 403, 404):
                    continue
                raise
        if created:
            log.debug("serviceaccounts in %s: created %s", namespace, ", ".join(created))
        return Result.done()
