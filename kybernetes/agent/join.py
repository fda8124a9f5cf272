"""Joining a cluster with a bootstrap token, and keeping the node's client certificate fresh.

As the kubelet's TLS bootstrap (with kubeadm's / k3s' discovery): the agent
1. learns the cluster CA: a given CA file, or the server's `/cacerts` fetched without
   credentials and accepted only when it matches `--ca-cert-hash` (kubeadm's pin of the
   CA's public key). An unverified CA is never trusted, so the token is only ever sent to
   the real API server;
2. makes its own key (0600, it never leaves the node) and asks, as the token's
   `system:bootstrap:<id>` user, for a `kubernetes.io/kube-apiserver-client-kubelet`
   certificate for `system:node:<name>` (group `system:nodes`); the controller manager's
   approver and signer answer it;
3. writes its kubeconfig (0600) naming that certificate, and runs with it.
The kubeconfig names the server joined through (`--server`); the running agent also learns
every other API server from the `kubernetes` Endpoints and fails over between them
(client/apiservers.py, kept in <data-dir>/apiservers.json across restarts).
A kubeconfig whose certificate is still good is reused on restart (the token is then not
needed). A running agent renews the certificate once 80% of its life has passed, as the
node itself (`selfnodeclient`), and its client uses the new one without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes.api import bootstraptoken
from kybernetes.client import ApiClient, ApiError, Client
from kybernetes.client.resources import Resource

log = logging.getLogger(__name__)

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
USAGES = ["digital signature", "client auth"]
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
CSRS = Resource.for_kind("certificates.k8s.io/v1", "CertificateSigningRequest")
KUBECONFIG = "kubelet.kubeconfig"
CERT_FILE, KEY_FILE, CA_FILE = "kubelet-client.crt", "kubelet-client.key", "ca.crt"
RENEW_AT = 0.8
# Old connections (authenticated with the old certificate) close this long after a renewal.
CLOSE_OLD_AFTER = 30.0


class JoinError(Exception):
    """The node could not join; the text says why and what to do."""


# -- pure parts ------------------------------------------------------------------------------


def signing_request(key: ec.EllipticCurvePrivateKey, node_name: str) -> bytes:
    """The PEM CSR of the node's client certificate (no names: upstream refuses any)."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, NODE_PREFIX + node_name)])
    return (x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM))


def csr_object(node_name: str, request_pem: bytes) -> dict[str, Any]:
    return {"apiVersion": CSRS.api_version, "kind": CSRS.kind,
            "metadata": {"generateName": "node-csr-", "labels": {"kybernetes.io/client-node": node_name}},
            "spec": {"request": base64.b64encode(request_pem).decode(), "signerName": SIGNER, "usages": USAGES}}


def renew_at(cert: x509.Certificate) -> dt.datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * RENEW_AT


def cert_is_usable(cert: x509.Certificate, ca: x509.Certificate, node_name: str, now: dt.datetime) -> bool:
    """Whether a client certificate on disk still identifies this node to this cluster."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return cns == [NODE_PREFIX + node_name] and cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def kubeconfig(server: str, ca_path: str, cert_path: str, key_path: str, node_name: str) -> dict[str, Any]:
    user = NODE_PREFIX + node_name
    return {"apiVersion": "v1", "kind": "Config", "current-context": "default",
            "clusters": [{"name": "default", "cluster": {"server": server, "certificate-authority": ca_path}}],
            "users": [{"name": user, "user": {"client-certificate": cert_path, "client-key": key_path}}],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": user}}]}


def trusted_ca(fetched: bytes | None, ca_file_pem: bytes | None, pin: str | None) -> bytes:
    """The CA to trust: a given file (checked against the pin if one is given), else the
    fetched one only when it matches the pin. JoinError otherwise."""
    if ca_file_pem is not None:
        if pin and not bootstraptoken.hash_matches(ca_file_pem, pin):
            raise JoinError(f"the CA certificate file does not match {pin}")
        return ca_file_pem
    if not pin:
        raise JoinError("refusing to trust the server's CA unverified: give --ca-cert-hash sha256:<hash> "
                        "(kyb token create --print-join-command prints it) or --ca-cert <file>")
    if fetched is None or not bootstraptoken.hash_matches(fetched, pin):
        raise JoinError(f"the server's CA certificate does not match {pin}: not joining")
    return fetched


# -- I/O -------------------------------------------------------------------------------------


def _write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


async def fetch_ca(server: str) -> bytes:
    """The server's `/cacerts`, fetched without credentials over an unverified connection:
    only to be trusted after it has matched a pin."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s, \
            s.get(server.rstrip("/") + "/cacerts", ssl=ctx) as resp:
        if resp.status != 200:
            raise JoinError(f"{server}/cacerts answered {resp.status}")
        return await resp.read()


async def _request_certificate(client: Client, node_name: str, key: ec.EllipticCurvePrivateKey,
                               timeout: float) -> bytes:
    created = await client.create(CSRS, None, csr_object(node_name, signing_request(key, node_name)))
    name = created["metadata"]["name"]
    log.info("requested a client certificate for node %s (%s)", node_name, name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        csr = await client.get(CSRS, None, name)
        for c in (csr.get("status") or {}).get("conditions") or []:
            if c.get("type") in ("Denied", "Failed") and c.get("status") == "True":
                raise JoinError(f"client certificate request {name} {c['type'].lower()}: "
                                f"{c.get('message') or c.get('reason') or ''}")
        pem = (csr.get("status") or {}).get("certificate")
        if pem:
            cert_pem = base64.b64decode(pem)
            if x509.load_pem_x509_certificate(cert_pem).public_key() != key.public_key():
                raise JoinError(f"client certificate request {name} was answered for another key")
            return cert_pem
        if loop.time() > deadline:
            raise JoinError(f"client certificate request {name} was not approved and signed within {timeout:.0f}s "
                            f"(approve it: kubectl certificate approve {name})")
        await asyncio.sleep(0.3)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def paths(directory: str) -> tuple[str, str, str, str]:
    """(kubeconfig, CA, certificate, key) paths in the agent's pki directory."""
    return tuple(os.path.join(directory, f) for f in (KUBECONFIG, CA_FILE, CERT_FILE, KEY_FILE))  # type: ignore[return-value]


def existing_kubeconfig(directory: str, node_name: str) -> str | None:
    """The kubeconfig of an earlier join whose certificate is still good, else None."""
    config, ca_path, cert_path, _ = paths(directory)
    ca_pem, cert_pem = _read(ca_path), _read(cert_path)
    if not os.path.exists(config) or ca_pem is None or cert_pem is None:
        return None
    try:
        ca, cert = x509.load_pem_x509_certificate(ca_pem), x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None
    return config if cert_is_usable(cert, ca, node_name, dt.datetime.now(dt.UTC)) else None


async def join(server: str, token: str, node_name: str, directory: str, ca_cert_hash: str | None = None,
               ca_cert_file: str | None = None, timeout: float = 120.0) -> str:
    """Join with a bootstrap token (see the module's steps); the path of the node's kubeconfig."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    found = existing_kubeconfig(directory, node_name)
    if found is not None:
        log.info("node %s reuses its client certificate (%s)", node_name, found)
        return found
    if not bootstraptoken.looks_like_token(token):
        raise JoinError("a bootstrap token looks like [a-z0-9]{6}.[a-z0-9]{16}")
    given = _read(ca_cert_file) if ca_cert_file else None
    if ca_cert_file and given is None:
        raise JoinError(f"no CA certificate file {ca_cert_file}")
    fetched = None if given is not None else await fetch_ca(server)
    ca_pem = trusted_ca(fetched, given, ca_cert_hash)
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    bootstrap = ApiClient(server, ctx, token, user_agent="kyb-agent-bootstrap")
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        cert_pem = await _request_certificate(bootstrap, node_name, key, timeout)
    except ApiError as e:
        raise JoinError(f"the API server refused the bootstrap token: {e}") from None
    finally:
        await bootstrap.close()
    config, ca_path, cert_path, key_path = paths(directory)
    _write(ca_path, ca_pem)
    _write(key_path, _key_pem(key))
    _write(cert_path, cert_pem)
    _write(config, yaml.safe_dump(kubeconfig(server, ca_path, cert_path, key_path, node_name)).encode())
    log.info("node %s joined: client certificate issued, kubeconfig %s", node_name, config)
    return config


async def renew_client_cert(client: ApiClient, node_name: str, directory: str, timeout: float = 120.0) -> None:
    """A new client certificate, asked for as the node itself, written and put to use."""
    _, _, cert_path, key_path = paths(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = await _request_certificate(client, node_name, key, timeout)
    _write(key_path, _key_pem(key))
    _write(cert_path, cert_pem)
    assert client.ssl_context is not None
    # New connections present the new certificate; the pooled ones go after a grace period.
    client.ssl_context.load_cert_chain(cert_path, key_path)
    old = client.detach_sessions()
    await asyncio.sleep(CLOSE_OLD_AFTER)
    for s in old:
        await s.close()


async def keep_client_cert(client: ApiClient, node_name: str, directory: str, retry: float = 30.0,
                           now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
    """Renew the node's client certificate when 80% of its life has passed. Runs until cancelled."""
    cert_path = paths(directory)[2]
    while True:
        pem = _read(cert_path)
        due = renew_at(x509.load_pem_x509_certificate(pem)) if pem else now()
        await asyncio.sleep(max((due - now()).total_seconds(), 0.0))
        try:
            await renew_client_cert(client, node_name, directory)
            log.info("client certificate of node %s renewed", node_name)
        except (JoinError, ApiError, aiohttp.ClientError, OSError, ssl.SSLError) as e:
            log.warning("client certificate of node %s not renewed yet: %s", node_name, e)
            await asyncio.sleep(retry)
