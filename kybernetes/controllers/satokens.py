"""The tokens controller: legacy ServiceAccount token Secrets get their token.

Only a Secret of type `kubernetes.io/service-account-token` that names its account in
the `kubernetes.io/service-account.name` annotation is filled, as upstream's tokens
controller does: `token` (a never-expiring JWT signed with the service account key,
kube-controller-manager's --service-account-private-key-file), `ca.crt` and
`namespace`, and the account's uid annotation. Nothing is created on its own. A Secret
whose account is gone (or was recreated under another uid) is deleted, which also
revokes its token.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from kybernetes.api import serviceaccounts as sat
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import SECRETS, SERVICEACCOUNTS
from kybernetes.client.workqueue import run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "tokens-controller"


@dataclass(frozen=True)
class TokenSecretPlan:
    """What to do with one token Secret: delete it, write `update`, or nothing."""

    delete: bool = False
    update: Obj | None = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def plan_token_secret(secret: Obj, sa: Obj | None, ca_pem: str, sign: Callable[[Obj], str]) -> TokenSecretPlan:
    """The tokens controller's decision for a token Secret, given its account (None: gone)."""
    meta = secret.get("metadata") or {}
    if secret.get("type") != sat.SA_TOKEN_SECRET_TYPE or meta.get("deletionTimestamp"):
        return TokenSecretPlan()
    annotations = dict(meta.get("annotations") or {})
    sa_meta = (sa or {}).get("metadata") or {}
    want_uid = annotations.get(sat.SA_UID_ANNOTATION)
    if sa is None or (want_uid and want_uid != sa_meta.get("uid")):
        return TokenSecretPlan(delete=True)
    data = dict(secret.get("data") or {})
    changed = False
    if not want_uid:
        annotations[sat.SA_UID_ANNOTATION] = sa_meta.get("uid", "")
        changed = True
    if not data.get("token"):
        data["token"] = _b64(sign(sat.legacy_claims(sa, secret)))
        changed = True
    if ca_pem and not data.get("ca.crt"):
        data["ca.crt"] = _b64(ca_pem)
        changed = True
    if not data.get("namespace"):
        data["namespace"] = _b64(meta.get("namespace", ""))
        changed = True
    if not changed:
        return TokenSecretPlan()
    return TokenSecretPlan(update={**secret, "metadata": {**meta, "annotations": annotations}, "data": data})


class FileSigner:
    """Signs with the private key in `path`, re-read when the file changes (key rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._key: sat.PrivateKey | None = None

    def key(self) -> sat.PrivateKey:
        st = os.stat(self.path)
        stamp = (st.st_ino, st.st_mtime_ns)
        if self._key is None or stamp != self._stamp:
            with open(self.path, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
            if not isinstance(key, sat.PrivateKey):
                raise ValueError(f"{self.path}: not an ECDSA or RSA private key")
            self._key, self._stamp = key, stamp
        return self._key

    def __call__(self, claims: Obj) -> str:
        return sat.sign(claims, self.key())


class TokensController:
    def __init__(self, client: Client, factory: Informers, sign: Callable[[Obj], str], ca_pem: str) -> None:
        self.client = client
        self.sign = sign
        self.ca_pem = ca_pem
        self.secrets = factory.informer(SECRETS, field_selector=f"type={sat.SA_TOKEN_SECRET_TYPE}")
        self.accounts = factory.informer(SERVICEACCOUNTS)
        self.queue = WorkQueue("serviceaccount-tokens")
        add_object_handler(self.secrets, self._on_secret, deletes=False)
        add_object_handler(self.accounts, self._on_account)

    def _on_secret(self, secret: Obj) -> None:
        meta = secret.get("metadata") or {}
        if secret.get("type") == sat.SA_TOKEN_SECRET_TYPE and meta.get("namespace"):
            self.queue.add(f"{meta['namespace']}/{meta.get('name', '')}")

    def _on_account(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        for secret in self.secrets.by_index("namespace", meta.get("namespace", "")):
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            if annotations.get(sat.SA_NAME_ANNOTATION) == meta.get("name"):
                self._on_secret(secret)

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "service account token secret", (), logger=log)

    async def _account(self, namespace: str, name: str) -> Obj | None:
        sa = self.accounts.get(namespace, name)
        if sa is not None:
            return sa
        # The informer may lag an account created a moment ago: the server has the last word.
        try:
            return await self.client.get(SERVICEACCOUNTS, namespace, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    async def sync(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        secret = self.secrets.get(namespace, name)
        if secret is None:
            return Result.done()
        sa_name = ((secret.get("metadata") or {}).get("annotations") or {}).get(sat.SA_NAME_ANNOTATION)
        if not sa_name:
            return Result.done()
        plan = plan_token_secret(secret, await self._account(namespace, sa_name), self.ca_pem, self.sign)
        try:
            if plan.delete:
                # The uid precondition: never a Secret recreated since it was read.
                await self.client.delete(SECRETS, namespace, name,
                                         preconditions={"uid": (secret.get("metadata") or {}).get("uid", "")})
            elif plan.update is not None:
                await self.client.update(SECRETS, namespace, name, plan.update, field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404:
                return Result.done()
            if e.code == 409:
                return Result.rate_limited()
            raise
        return Result.done()
