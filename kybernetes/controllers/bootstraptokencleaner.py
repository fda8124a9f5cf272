"""The token cleaner: deletes bootstrap token Secrets once they expire, as
kube-controller-manager's "tokencleaner" does (pkg/controller/bootstrap/tokencleaner.go).

The API server already refuses an expired token; removing its Secret keeps kube-system
tidy and makes `kyb token list` show only live tokens. A Secret not yet expired is
looked at again when it is due.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from kybernetes.api import bootstraptoken
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import SECRETS
from kybernetes.client.workqueue import run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def due_in(secret: Obj, now: dt.datetime) -> float | None:
    """Seconds until `secret` is to be deleted (0: now); None when never."""
    if not bootstraptoken.is_token_secret(secret) or (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    exp = bootstraptoken.expiration(secret)
    if exp is None:
        return None
    return max((exp - now).total_seconds(), 0.0)


class TokenCleaner:
    def __init__(self, client: Client, factory: Informers,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client = client
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.secrets = factory.informer(SECRETS, namespace=bootstraptoken.NAMESPACE,
                                        field_selector=f"type={bootstraptoken.SECRET_TYPE}")
        self.queue = WorkQueue("tokencleaner")
        add_object_handler(self.secrets, self._enqueue, deletes=False)

    def _enqueue(self, secret: Obj) -> None:
        if bootstraptoken.is_token_secret(secret):
            self.queue.add(secret["metadata"]["name"])

    async def run(self, workers: int = 1) -> None:
        await run_workers(self.queue, self.sync, workers, "bootstrap token", (), logger=log)

    async def sync(self, name: str) -> Result:
        secret = self.secrets.get(bootstraptoken.NAMESPACE, name)
        if secret is None:
            return Result.done()
        wait = due_in(secret, self.clock())
        if wait is None:
            return Result.done()
        if wait > 0:
            return Result.after(wait + 0.5)
        uid = (secret.get("metadata") or {}).get("uid")
        try:
            await self.client.delete(SECRETS, bootstraptoken.NAMESPACE, name,
                                     preconditions={"uid": uid} if uid else None)
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        log.info("deleted expired bootstrap token %s", name)
        return Result.done()
