"""The root CA publisher: every active namespace has a `kube-root-ca.crt` ConfigMap.

Pods (and Kubernetes' own conformance framework, before any spec) read the cluster's
CA bundle from this ConfigMap to verify the API server at its in-cluster addresses.
As upstream's root-ca-cert-publisher, it is created when a namespace appears, put
back when someone deletes or changes it, and terminating namespaces are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CONFIGMAPS, NAMESPACES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.serviceaccount import namespace_active

log = logging.getLogger(__name__)

NAME = "kube-root-ca.crt"
KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")
FIELD_MANAGER = "root-ca-cert-publisher"

Obj = dict[str, Any]


def desired_configmap(existing: Obj | None, ca_pem: str) -> Obj | None:
    """The ConfigMap to write (a new one, or `existing` corrected), or None when it is right."""
    data = {KEY: ca_pem}
    if existing is None:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}, "data": data}
    meta = existing.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    if existing.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
        return None
    annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
    return {**existing, "apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "annotations": annotations},
            "data": data}


class RootCACertPublisher:
    def __init__(self, client: Client, factory: Informers, ca_pem: str) -> None:
        self.client = client
        self.ca_pem = ca_pem
        self.namespaces = factory.informer(NAMESPACES)
        # Only the one ConfigMap of each namespace: a cluster's other ConfigMaps are none of our business.
        self.configmaps = factory.informer(CONFIGMAPS, field_selector=f"metadata.name={NAME}")
        self.queue = WorkQueue("root-ca-cert-publisher")
        add_object_handler(self.namespaces, self._on_namespace, deletes=False)
        self.configmaps.add_handler(on_update=lambda _old, new: self._on_configmap(new),
                                    on_delete=self._on_configmap)

    def _on_namespace(self, ns: Obj) -> None:
        if namespace_active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _on_configmap(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == NAME and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "root CA ConfigMap in", (), level=logging.INFO, logger=log)

    async def sync(self, namespace: str) -> Result:
        if not namespace_active(self.namespaces.get(None, namespace)):
            return Result.done()
        existing = self.configmaps.get(namespace, NAME)
        body = desired_configmap(existing, self.ca_pem)
        if body is None:
            return Result.done()
        try:
            if existing is None:
                await self.client.create(CONFIGMAPS, namespace, body, field_manager=FIELD_MANAGER)
            else:
                await self.client.update(CONFIGMAPS, namespace, NAME, body, field_manager=FIELD_MANAGER)
        except ApiError as e:
            # 404: the namespace is gone; 403 while it terminates (our cache may not know yet).
            # Any other 403 is a rule missing from our role, retried like a 409 (the cache
            # was behind): the next pass sees what is there.
            if e.code == 404 or (e.code == 403 and (_terminating(e) or not namespace_active(
                    self.namespaces.get(None, namespace)))):
                return Result.done()
            raise
        return Result.done()


def _terminating(e: ApiError) -> bool:
    """Whether a refusal is the namespace lifecycle's (kube-apiserver words it this way)."""
    causes = (e.details or {}).get("causes") or []
    return any(c.get("reason") == "NamespaceTerminating" for c in causes) or "being terminated" in e.message
