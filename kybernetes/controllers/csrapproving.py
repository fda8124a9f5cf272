"""The CSR approver: approves node certificate requests that the cluster's policy allows.

Node client certificates (`kubernetes.io/kube-apiserver-client-kubelet`), as upstream's
csrapproving controller (pkg/controller/certificates/approver/sarapprove.go): a request
that is a valid node client request is approved when its requester may `create`
`certificatesigningrequests/selfnodeclient` (a node renewing its own certificate: the
subject's CN is the requester's own name) or `certificatesigningrequests/nodeclient` (a
bootstrap token asking for a new node's first certificate), as a SubjectAccessReview
answers it. Nothing is denied: a request no rule allows is left to an administrator
(`kubectl certificate approve|deny`).

Node serving certificates (`kubernetes.io/kubelet-serving`), as k3s and
kubelet-csr-approver do (upstream leaves these to an administrator): a request from
`system:node:NAME` (group `system:nodes`) for `system:node:NAME` whose DNS names are the
node's name or its Hostname/DNS addresses and whose IP addresses are among the Node's
addresses is approved; it waits while the Node does not exist or does not list them.

The decisions are pure functions; the shell asks the authorizer and writes `/approval`.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from kybernetes.api.kinds.certificates import APPROVED, DENIED, FAILED, conditions, parse_request
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import NODES, Resource
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.csrsigning import (
    CSRS,
    KUBELET_CLIENT_SIGNER,
    KUBELET_SERVING_SIGNER,
    NODE_PREFIX,
    NODES_GROUP,
    kubelet_client_request_error,
    serving_request_error,
)

log = logging.getLogger(__name__)

ACCESS_REVIEWS = Resource.for_kind("authorization.k8s.io/v1", "SubjectAccessReview")
FIELD_MANAGER = "certificatesigningrequest-approving-controller"
REASON = "AutoApproved"
SELF_NODE_CLIENT = ("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview.")
NODE_CLIENT = ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview.")
SERVING_MESSAGE = "Auto approving kubelet serving certificate: its names are the node's name and addresses."

Obj = dict[str, Any]


@dataclass(frozen=True)
class AskAccess:
    """Approve with `message` if the requester may create certificatesigningrequests/<subresource>
    (each pair in turn, the first allowed wins)."""

    checks: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Approve:
    message: str


@dataclass(frozen=True)
class WaitForNode:
    """A serving request whose node is not (yet) known well enough to judge it."""

    node: str


def _settled(csr: Obj) -> bool:
    types = {c.get("type") for c in conditions(csr) if c.get("status") == "True"}
    return bool(types & {APPROVED, DENIED, FAILED})


def _cn(request: x509.CertificateSigningRequest) -> str:
    cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def node_names(node: Obj) -> tuple[set[str], set[Any]]:
    """(DNS names, IP addresses) a node's serving certificate may carry."""
    dns = {str((node.get("metadata") or {}).get("name", "")).lower()}
    ips: set[Any] = set()
    for a in (node.get("status") or {}).get("addresses") or []:
        value = str(a.get("address") or "")
        if a.get("type") in ("Hostname", "InternalDNS", "ExternalDNS"):
            dns.add(value.lower())
        elif a.get("type") in ("InternalIP", "ExternalIP"):
            try:
                ips.add(ipaddress.ip_address(value))
            except ValueError:
                pass
    return dns, ips


def serving_decision(csr: Obj, request: x509.CertificateSigningRequest, node: Obj | None) -> Approve | WaitForNode | None:
    spec = csr.get("spec") or {}
    username = str(spec.get("username") or "")
    if not username.startswith(NODE_PREFIX) or NODES_GROUP not in (spec.get("groups") or []):
        return None
    if _cn(request) != username or serving_request_error(request, list(spec.get("usages") or [])) is not None:
        return None
    name = username[len(NODE_PREFIX):]
    if node is None:
        return WaitForNode(name)
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    dns, ips = node_names(node)
    if not {n.lower() for n in sans.get_values_for_type(x509.DNSName)} <= dns:
        return WaitForNode(name)
    if not set(sans.get_values_for_type(x509.IPAddress)) <= ips:
        return WaitForNode(name)
    return Approve(SERVING_MESSAGE)


def decide(csr: Obj, node_of: Any = None) -> AskAccess | Approve | WaitForNode | None:
    """What the approver does with `csr` (None: nothing, it is an administrator's to judge).
    `node_of(name)` is the Node object of that name or None."""
    if _settled(csr):
        return None
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    if signer not in (KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER):
        return None
    try:
        request = parse_request(spec.get("request"))
    except ValueError:
        return None
    if signer == KUBELET_SERVING_SIGNER:
        username = str(spec.get("username") or "")
        node = node_of(username[len(NODE_PREFIX):]) if node_of is not None and username.startswith(NODE_PREFIX) else None
        return serving_decision(csr, request, node)
    if kubelet_client_request_error(request, list(spec.get("usages") or [])) is not None:
        return None
    checks = []
    if spec.get("username") and _cn(request) == spec.get("username"):
        checks.append(SELF_NODE_CLIENT)
    checks.append(NODE_CLIENT)
    return AskAccess(tuple(checks))


def access_review(csr: Obj, subresource: str) -> Obj:
    """The SubjectAccessReview asking whether `csr`'s requester may create
    certificatesigningrequests/<subresource>."""
    spec = csr.get("spec") or {}
    review: Obj = {"user": spec.get("username") or "", "groups": list(spec.get("groups") or []),
                   "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                                          "verb": "create", "subresource": subresource}}
    if spec.get("uid"):
        review["uid"] = spec["uid"]
    if spec.get("extra"):
        review["extra"] = spec["extra"]
    return {"apiVersion": ACCESS_REVIEWS.api_version, "kind": ACCESS_REVIEWS.kind, "spec": review}


def approved(csr: Obj, message: str) -> Obj:
    """`csr` with the Approved condition added (the server stamps its times)."""
    status = dict(csr.get("status") or {})
    status["conditions"] = [*conditions(csr), {"type": APPROVED, "status": "True", "reason": REASON,
                                               "message": message}]
    return {**csr, "apiVersion": CSRS.api_version, "kind": CSRS.kind, "status": status}


class CSRApprovingController:
    """Approves node client certificate requests (through the authorizer) and node serving
    certificate requests (names checked against the Node)."""

    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.csrs = factory.informer(CSRS)
        self.nodes = factory.informer(NODES)
        self.queue = WorkQueue("csrapproving")
        add_object_handler(self.csrs, self._enqueue, deletes=False)
        add_object_handler(self.nodes, self._on_node, deletes=False)

    def _node(self, name: str) -> Obj | None:
        return self.nodes.get(None, name)

    def _enqueue(self, csr: Obj) -> None:
        if not _settled(csr) and (csr.get("spec") or {}).get("signerName") in (KUBELET_CLIENT_SIGNER,
                                                                                KUBELET_SERVING_SIGNER):
            self.queue.add(csr["metadata"]["name"])

    def _on_node(self, node: Obj) -> None:
        # A node's serving request may have been waiting for the Node or its addresses.
        user = NODE_PREFIX + str((node.get("metadata") or {}).get("name", ""))
        for csr in self.csrs.list():
            spec = csr.get("spec") or {}
            if spec.get("signerName") == KUBELET_SERVING_SIGNER and spec.get("username") == user:
                self._enqueue(csr)

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "certificate signing request", (), logger=log)

    async def _allowed(self, csr: Obj, subresource: str) -> bool:
        answer = await self.client.create(ACCESS_REVIEWS, None, access_review(csr, subresource))
        return bool((answer.get("status") or {}).get("allowed"))

    async def sync(self, name: str) -> Result:
        csr = self.csrs.get(None, name)
        if csr is None:
            return Result.done()
        action = decide(csr, self._node)
        message = None
        if isinstance(action, Approve):
            message = action.message
        elif isinstance(action, AskAccess):
            for subresource, text in action.checks:
                if await self._allowed(csr, subresource):
                    message = text
                    break
        if message is None:
            return Result.done()
        try:
            await self.client.update(CSRS, None, name, approved(csr, message), subresource="approval",
                                     field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404:
                return Result.done()
            raise  # a conflict: the informer brings the newer version and it is tried again
        log.info("approved certificate signing request %s (%s)", name, message)
        return Result.done()
