"""The agent's serving certificate, issued by the cluster CA through the API.

The API server verifies the agent's HTTPS port (`apiserver.agentdial`): the certificate
must chain to the cluster CA, carry the node's name (and its addresses) as names, and
belong to the node (subject `system:node:<name>`, organization `system:nodes`). The
agent asks for one as the kubelet does with `--rotate-server-certificates`: a
CertificateSigningRequest to the `kubernetes.io/kubelet-serving` signer, which the
controller manager's signer answers (the CA key never leaves the control plane). While
the agent's credential may approve requests (today's admin kubeconfig), it approves its
own; otherwise it waits for an approver.

A certificate on disk is reused while it chains to the CA the agent trusts, names every
wanted name, belongs to this node and is not in the last fifth of its life; a running
agent renews it then (`keep_serving_cert`) and serves the new one to new connections.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
import ssl
from collections.abc import Iterable
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes.client import ApiError, Client
from kybernetes.client.resources import Resource

log = logging.getLogger(__name__)

SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
USAGES = ["digital signature", "server auth"]
CSRS = Resource.for_kind("certificates.k8s.io/v1", "CertificateSigningRequest")
CERT_FILE, KEY_FILE = "agent.crt", "agent.key"
# Renewed once this share of its life has passed (upstream's rotation renews at 70-90%).
RENEW_AT = 0.8

SanEntry = ipaddress.IPv4Address | ipaddress.IPv6Address | str


class ServingCertError(Exception):
    """No serving certificate could be obtained; the text says why."""


def wanted_names(node_name: str, addresses: Iterable[str]) -> set[SanEntry]:
    """The SANs of the node's serving certificate: its name and its addresses."""
    out: set[SanEntry] = {node_name.lower()}
    for a in addresses:
        if not a:
            continue
        try:
            out.add(ipaddress.ip_address(a))
        except ValueError:
            out.add(a.lower())
    return out


def _sans(cert: x509.Certificate | x509.CertificateSigningRequest) -> set[SanEntry]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    out: set[SanEntry] = {n.lower() for n in ext.get_values_for_type(x509.DNSName)}
    out.update(ext.get_values_for_type(x509.IPAddress))
    return out


def cert_is_usable(cert: x509.Certificate, ca: x509.Certificate, node_name: str, names: set[SanEntry],
                   now: dt.datetime) -> bool:
    """Whether a certificate on disk still serves this node (see the module's rule)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [NODE_PREFIX + node_name] or not names <= _sans(cert):
        return False
    return cert.not_valid_before_utc <= now < renew_at(cert)


def renew_at(cert: x509.Certificate) -> dt.datetime:
    """When a certificate is due for renewal."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * RENEW_AT


def signing_request(key: ec.EllipticCurvePrivateKey, node_name: str, names: set[SanEntry]) -> bytes:
    """The PEM CSR of the node's serving certificate."""
    general: list[x509.GeneralName] = [x509.DNSName(n) if isinstance(n, str) else x509.IPAddress(n)
                                       for n in sorted(names, key=lambda n: (not isinstance(n, str), str(n)))]
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, NODE_PREFIX + node_name)])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName(general), critical=False).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_object(node_name: str, request_pem: bytes) -> dict[str, Any]:
    return {"apiVersion": CSRS.api_version, "kind": CSRS.kind,
            "metadata": {"generateName": "csr-", "labels": {"kybernetes.io/serving-node": node_name}},
            "spec": {"request": base64.b64encode(request_pem).decode(), "signerName": SIGNER, "usages": USAGES}}


def _condition(csr: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (csr.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def _write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read_cert(path: str) -> x509.Certificate | None:
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except (FileNotFoundError, ValueError):
        return None


async def _approve(client: Client, csr: dict[str, Any]) -> None:
    body = dict(csr)
    status = dict(body.get("status") or {})
    status["conditions"] = [*(status.get("conditions") or []), {
        "type": "Approved", "status": "True", "reason": "AgentSelfApproved",
        "message": "the node agent approved its own serving certificate with its admin credential"}]
    body["status"] = status
    try:
        await client.update(CSRS, None, csr["metadata"]["name"], body, subresource="approval")
    except ApiError as e:
        if e.code not in (401, 403, 409):
            raise
        log.info("serving certificate request %s waits for an approver (%s)", csr["metadata"]["name"], e)


async def _issued(client: Client, name: str, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        csr = await client.get(CSRS, None, name)
        for kind in ("Denied", "Failed"):
            cond = _condition(csr, kind)
            if cond is not None:
                raise ServingCertError(f"serving certificate request {name} {kind.lower()}: "
                                       f"{cond.get('message') or cond.get('reason') or ''}")
        cert = (csr.get("status") or {}).get("certificate")
        if cert:
            return base64.b64decode(cert)
        if loop.time() > deadline:
            raise ServingCertError(f"serving certificate request {name} was not signed within {timeout:.0f}s "
                                   "(is the controller manager's csrsigning controller running?)")
        await asyncio.sleep(0.3)


async def ensure_serving_cert(client: Client, node_name: str, addresses: Iterable[str], directory: str,
                              ca_pem: bytes, timeout: float = 120.0) -> tuple[str, str]:
    """(cert path, key path) of a CA-issued serving certificate for this node, reusing
    the one on disk while it is usable, else requested through the API."""
    names = wanted_names(node_name, addresses)
    ca = x509.load_pem_x509_certificate(ca_pem)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(directory, CERT_FILE), os.path.join(directory, KEY_FILE)
    current = _read_cert(cert_path)
    if current is not None and os.path.exists(key_path) and cert_is_usable(
            current, ca, node_name, names, dt.datetime.now(dt.UTC)):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    created = await client.create(CSRS, None, csr_object(node_name, signing_request(key, node_name, names)))
    name = created["metadata"]["name"]
    log.info("requested a serving certificate for node %s (%s)", node_name, name)
    await _approve(client, created)
    cert_pem = await _issued(client, name, timeout)
    issued = x509.load_pem_x509_certificate(cert_pem)
    if issued.public_key() != key.public_key():
        raise ServingCertError(f"serving certificate request {name} was answered for another key")
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    _write(cert_path, cert_pem)
    return cert_path, key_path


async def keep_serving_cert(client: Client, node_name: str, addresses: Iterable[str], directory: str,
                            ca_pem: bytes, ctx: ssl.SSLContext, retry: float = 60.0) -> None:
    """Renew the serving certificate when it is due and load it into `ctx` (the agent
    API's server context: new connections get the new certificate). Runs until cancelled."""
    wanted = list(addresses)
    while True:
        current = _read_cert(os.path.join(directory, CERT_FILE))
        due = renew_at(current) if current is not None else dt.datetime.now(dt.UTC)
        await asyncio.sleep(max((due - dt.datetime.now(dt.UTC)).total_seconds(), 0.0))
        try:
            ctx.load_cert_chain(*await ensure_serving_cert(client, node_name, wanted, directory, ca_pem))
            log.info("serving certificate of node %s renewed", node_name)
        except (ServingCertError, ApiError, aiohttp.ClientError, OSError, ssl.SSLError) as e:
            log.warning("serving certificate of node %s not renewed yet: %s", node_name, e)
            await asyncio.sleep(retry)
