"""The CSR signer: issues certificates for approved `kubernetes.io/kube-apiserver-client`,
`kubernetes.io/kube-apiserver-client-kubelet` (a node's client certificate) and
`kubernetes.io/kubelet-serving` CertificateSigningRequests with the cluster CA, as
kube-controller-manager's "csrsigning" controller does (pkg/controller/certificates/signer).
A node agent's serving certificate comes from here, so the CA key never leaves the
control plane.

Only requests that are approved, not denied, not failed and not yet issued are signed. A
request whose usages a client certificate may not carry gets a `Failed` condition
(`SignerValidationFailure`) instead. The certificate keeps the request's subject and
names; it is valid from five minutes ago (clock skew) for the requested duration, capped
at the signer's maximum and the CA's own expiry, like upstream's permissive policy.
The decision and the certificate are pure functions; the shell reads an informer and
writes `/status`.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes.api.kinds.certificates import (
    APPROVED,
    DENIED,
    FAILED,
    KUBE_APISERVER_CLIENT_SIGNER,
    conditions,
    parse_request,
)
from kybernetes.api.timefmt import rfc3339
from kybernetes.client import ApiError, Client, Informers, WorkQueue
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import Resource
from kybernetes.client.workqueue import run_workers

log = logging.getLogger(__name__)

CSRS = Resource.for_kind("certificates.k8s.io/v1", "CertificateSigningRequest")
FIELD_MANAGER = "certificatesigningrequest-signing-controller"
BACKDATE = dt.timedelta(minutes=5)
# Below this a certificate's end is not backdated with its start (upstream's "short" TTL).
SHORT = dt.timedelta(hours=8)
# kube-controller-manager's --cluster-signing-duration default.
DEFAULT_MAX_DURATION = dt.timedelta(days=365)
_CLIENT_USAGES = ("digital signature", "key encipherment", "client auth")
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
_SERVING_USAGES = ("digital signature", "key encipherment", "server auth")
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SIGNERS = (KUBE_APISERVER_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, KUBELET_CLIENT_SIGNER)
# Exactly one of these (the second for keys that cannot encipher, such as ECDSA).
_KUBELET_CLIENT_USAGES = ({"digital signature", "key encipherment", "client auth"}, {"digital signature", "client auth"})

Obj = dict[str, Any]


@dataclass(frozen=True)
class Sign:
    """Issue a certificate for this request."""


@dataclass(frozen=True)
class Fail:
    """Mark the request Failed: the signer will not issue what it asks for."""

    reason: str
    message: str


def client_usage_error(usages: list[Any]) -> str | None:
    """Why a kube-apiserver client certificate may not carry `usages` (None when it may)."""
    for usage in usages:
        if usage not in _CLIENT_USAGES:
            return f"invalid usage for client certificate: {usage}"
    if "client auth" not in usages:
        return "missing required usages for client certificate: client auth"
    return None


def serving_request_error(request: x509.CertificateSigningRequest, usages: list[Any]) -> str | None:
    """Why a node agent's serving certificate may not be issued for `request` (None when
    it may), as upstream's kubelet-serving signer checks it."""
    orgs = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if orgs != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    cns = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(cns) != 1 or not cns[0].startswith(NODE_PREFIX) or cns[0] == NODE_PREFIX:
        return "subject common name does not begin with system:node:"
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    if names.get_values_for_type(x509.RFC822Name):
        return "Email subjectAltNames are not allowed"
    if names.get_values_for_type(x509.UniformResourceIdentifier):
        return "URI subjectAltNames are not allowed"
    if not names.get_values_for_type(x509.DNSName) and not names.get_values_for_type(x509.IPAddress):
        return "DNS or IP subjectAltName is required"
    if any(u not in _SERVING_USAGES for u in usages) or "server auth" not in usages:
        return f"usages did not match [{' '.join(_SERVING_USAGES)}]"
    return None


def kubelet_client_request_error(request: x509.CertificateSigningRequest, usages: list[Any]) -> str | None:
    """Why a node's client certificate may not be issued for `request` (None when it may),
    as upstream's ValidateKubeletClientCSR words it."""
    orgs = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if orgs != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    for kind, label in ((x509.DNSName, "DNS"), (x509.RFC822Name, "Email"), (x509.IPAddress, "IP"),
                        (x509.UniformResourceIdentifier, "URI")):
        if names.get_values_for_type(kind):
            return f"{label} subjectAltNames are not allowed"
    cns = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(cns) != 1 or not cns[0].startswith(NODE_PREFIX) or cns[0] == NODE_PREFIX:
        return "subject common name does not begin with system:node:"
    if set(usages) not in _KUBELET_CLIENT_USAGES or len(set(usages)) != len(usages):
        return "usages did not match [digital signature key encipherment client auth]"
    return None


def _request_error(signer: str, spec: Obj) -> str | None:
    usages = list(spec.get("usages") or [])
    if signer == KUBELET_CLIENT_SIGNER:
        try:
            request = parse_request(spec.get("request"))
        except ValueError as e:
            return str(e)
        return kubelet_client_request_error(request, usages)
    if signer == KUBELET_SERVING_SIGNER:
        try:
            request = parse_request(spec.get("request"))
        except ValueError as e:
            return str(e)
        return serving_request_error(request, usages)
    return client_usage_error(usages)


def decide(csr: Obj, signer_name: str | None = None) -> Sign | Fail | None:
    """What the signer does with `csr`: None when it is not this signer's to handle now
    (`signer_name`: only that signer's requests; None: any this controller signs)."""
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    if signer not in ((signer_name,) if signer_name else SIGNERS):
        return None
    types = {c.get("type") for c in conditions(csr) if c.get("status") == "True"}
    if APPROVED not in types or DENIED in types or FAILED in types:
        return None
    if (csr.get("status") or {}).get("certificate"):
        return None
    problem = _request_error(str(signer), spec)
    if problem is not None:
        return Fail("SignerValidationFailure", problem)
    return Sign()


def validity(now: dt.datetime, requested_seconds: Any, max_duration: dt.timedelta,
             ca_not_after: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(notBefore, notAfter) of a new certificate."""
    ttl = max_duration
    if isinstance(requested_seconds, int) and not isinstance(requested_seconds, bool) and requested_seconds > 0:
        ttl = min(ttl, dt.timedelta(seconds=requested_seconds))
    not_before = now - BACKDATE
    not_after = now + ttl if ttl < SHORT else not_before + ttl
    return not_before, min(not_after, ca_not_after)


def _key_usage(usages: list[str]) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature="digital signature" in usages or "signing" in usages,
                         content_commitment="content commitment" in usages,
                         key_encipherment="key encipherment" in usages, data_encipherment="data encipherment" in usages,
                         key_agreement="key agreement" in usages, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


_EXT_USAGES = {"client auth": ExtendedKeyUsageOID.CLIENT_AUTH, "server auth": ExtendedKeyUsageOID.SERVER_AUTH}


def issue(csr: Obj, ca_cert: x509.Certificate, ca_key: CertificateIssuerPrivateKeyTypes, now: dt.datetime,
          max_duration: dt.timedelta = DEFAULT_MAX_DURATION) -> bytes:
    """The PEM certificate for an approved request (its signature is checked again here)."""
    spec = csr.get("spec") or {}
    request = parse_request(spec.get("request"))
    usages = [u for u in spec.get("usages") or [] if isinstance(u, str)]
    not_before, not_after = validity(now, spec.get("expirationSeconds"), max_duration,
                                     ca_cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder()
               .subject_name(request.subject).issuer_name(ca_cert.subject).public_key(request.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(_key_usage(usages), critical=True)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    ext = [_EXT_USAGES[u] for u in usages if u in _EXT_USAGES]
    if ext:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def failed_status(csr: Obj, fail: Fail, now: dt.datetime) -> Obj:
    """`csr`'s status with the Failed condition added."""
    status = dict(csr.get("status") or {})
    stamp = rfc3339(now)
    status["conditions"] = [*conditions(csr), {"type": FAILED, "status": "True", "reason": fail.reason,
                                               "message": fail.message, "lastUpdateTime": stamp,
                                               "lastTransitionTime": stamp}]
    return status


def load_signer(cert_file: str, key_file: str) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key  # type: ignore[return-value]


class CSRSigningController:
    """Signs approved kube-apiserver-client and kubelet-serving requests with the cluster CA."""

    def __init__(self, client: Client, factory: Informers, cert_file: str, key_file: str,
                 max_duration: dt.timedelta = DEFAULT_MAX_DURATION) -> None:
        self.client = client
        self.ca_cert, self.ca_key = load_signer(cert_file, key_file)
        self.max_duration = max_duration
        self.csrs = factory.informer(CSRS)
        self.queue = WorkQueue("csrsigning")
        add_object_handler(self.csrs, self._enqueue, deletes=False)

    def _enqueue(self, csr: Obj) -> None:
        if decide(csr) is not None:
            self.queue.add(csr["metadata"]["name"])

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "certificate signing request", (), logger=log)

    async def sync(self, name: str) -> Result:
        csr = self.csrs.get(None, name)
        if csr is None:
            return Result.done()
        action = decide(csr)
        if action is None:
            return Result.done()
        now = dt.datetime.now(dt.UTC)
        body = {**csr, "apiVersion": CSRS.api_version, "kind": CSRS.kind}
        if isinstance(action, Fail):
            body["status"] = failed_status(csr, action, now)
        else:
            try:
                pem = issue(csr, self.ca_cert, self.ca_key, now, self.max_duration)
            except ValueError as e:
                # A request that no longer parses cannot be signed, now or later.
                body["status"] = failed_status(csr, Fail("SignerValidationFailure", str(e)), now)
            else:
                body["status"] = {**(csr.get("status") or {}), "certificate": base64.b64encode(pem).decode()}
        try:
            await self.client.update(CSRS, None, name, body, subresource="status", field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404:
                return Result.done()
            raise  # a conflict: the informer brings the newer version and it is tried again
        return Result.done()
