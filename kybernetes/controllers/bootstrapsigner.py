"""The bootstrap signer: kube-public/cluster-info carries a `jws-kubeconfig-<token-id>`
signature of its kubeconfig for every bootstrap token that may sign, as
kube-controller-manager's "bootstrapsigner" keeps it (pkg/controller/bootstrap/bootstrapsigner.go).

A joiner holding only a token checks the cluster's address and CA with it. Signatures are
recomputed when the ConfigMap or a token Secret changes; those of deleted, expired or
non-signing tokens are removed. What to write is `bootstraptoken.signed_cluster_info_data`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from kybernetes.api import bootstraptoken as bt
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CONFIGMAPS, SECRETS
from kybernetes.client.workqueue import run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KEY = f"{bt.CLUSTER_INFO_NAMESPACE}/{bt.CLUSTER_INFO_NAME}"
FIELD_MANAGER = "bootstrap-signer"


class BootstrapSigner:
    def __init__(self, client: Client, factory: Informers,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client = client
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.secrets = factory.informer(SECRETS, namespace=bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}")
        self.configmaps = factory.informer(CONFIGMAPS, namespace=bt.CLUSTER_INFO_NAMESPACE,
                                           field_selector=f"metadata.name={bt.CLUSTER_INFO_NAME}")
        self.queue = WorkQueue("bootstrapsigner")
        # Every change leads to the one ConfigMap: a single key, so bursts collapse into one write.
        add_object_handler(self.secrets, lambda _s: self.queue.add(KEY))
        add_object_handler(self.configmaps, lambda _c: self.queue.add(KEY), deletes=False)

    async def run(self, workers: int = 1) -> None:
        self.queue.add(KEY)
        await run_workers(self.queue, self.sync, 1, "cluster-info", (), logger=log)

    def _expires_next(self, now: dt.datetime) -> float | None:
        """Seconds until the next signing token expires, when its signature must go."""
        times = [exp for s in self.secrets.list() if bt.signing_token(s, now) is not None
                 for exp in [bt.expiration(s)] if exp is not None]
        return (min(times) - now).total_seconds() if times else None

    async def sync(self, key: str) -> Result:
        cm = self.configmaps.get(bt.CLUSTER_INFO_NAMESPACE, bt.CLUSTER_INFO_NAME)
        if cm is None:
            return Result.done()
        now = self.clock()
        data = bt.signed_cluster_info_data(cm, self.secrets.list(), now)
        if data is not None:
            # The resourceVersion pins the write to what was signed; a conflict re-signs the newer copy.
            body = {**cm, "data": data}
            try:
                await self.client.update(CONFIGMAPS, bt.CLUSTER_INFO_NAMESPACE, bt.CLUSTER_INFO_NAME, body,
                                         field_manager=FIELD_MANAGER)
            except ApiError as e:
                if e.code == 404:
                    return Result.done()
                if e.code != 409:
                    raise
                return Result.after(1.0)
        wait = self._expires_next(now)
        return Result.after(max(wait, 0.0) + 0.5) if wait is not None else Result.done()
