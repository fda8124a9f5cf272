"""The service account controller: every active namespace has a `default` ServiceAccount.

Pods that name no service account run as `default`, so it must exist as soon as a
namespace does, and come back if someone deletes it. Terminating namespaces are
left alone: the server refuses new content in them anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from kybernetes.client import ApiClient, ApiError, InformerFactory, WorkQueue
from kybernetes.client.resources import NAMESPACES, SERVICEACCOUNTS

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
    def __init__(self, client: ApiClient, factory: InformerFactory,
                 service_accounts: Iterable[str] = DEFAULT_ACCOUNTS) -> None:
        self.client = client
        self.wanted = tuple(service_accounts)
        self.namespaces = factory.informer(NAMESPACES)
        self.accounts = factory.informer(SERVICEACCOUNTS)
        self.queue = WorkQueue("serviceaccount")
        self.namespaces.add_handler(on_add=self._on_namespace, on_update=lambda _o, n: self._on_namespace(n))
        self.accounts.add_handler(on_delete=self._on_account_deleted)

    def _on_namespace(self, ns: dict[str, Any]) -> None:
        if namespace_active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _on_account_deleted(self, sa: dict[str, Any]) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in self.wanted and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def run(self, workers: int = 2) -> None:
        tasks = [asyncio.ensure_future(self._worker()) for _ in range(max(1, workers))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                await self.sync(name)
                self.queue.forget(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a worker must survive any single failure
                if isinstance(e, ApiError):
                    log.info("serviceaccounts in %s: %s (will retry)", name, e)
                else:
                    log.exception("serviceaccounts in %s: sync failed", name)
                self.queue.add_rate_limited(name)
            finally:
                self.queue.done(name)

    async def sync(self, namespace: str) -> list[str]:
        """Create what is missing in `namespace`; returns the names created."""
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
        return created
