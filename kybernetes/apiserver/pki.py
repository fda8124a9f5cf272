"""The cluster's public-key infrastructure on disk.

Owns ``<data_dir>/pki/``: the cluster CA, the API server's serving certificate, the admin client
certificate and bearer token, the TLS server context built from them, admin kubeconfig files, and
the API server's own client certificate towards node agents (``system:kube-apiserver``, no group).
Everything here is synchronous and file based; the API server calls it once at start-up.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
import socket
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "kybernetes-ca"
SERVER_COMMON_NAME = "kybernetes-apiserver"
ADMIN_USER = "kybernetes-admin"
ADMIN_GROUP = "system:masters"

CLUSTER_NAME = "kybernetes"
CONTEXT_NAME = "kybernetes"

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
# Leaf certificates are reissued on start-up once they get this close to expiry, so a cluster that
# is restarted now and then never serves an expired certificate.
RENEW_BEFORE = dt.timedelta(days=30)
# Tolerates clients whose clocks run a little behind ours.
BACKDATE = dt.timedelta(hours=1)

DEFAULT_SERVER_HOSTS = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

SanEntry = ipaddress.IPv4Address | ipaddress.IPv6Address | str


@dataclass
class Pki:
    """Paths of the PKI files and the admin bearer token."""

    dir: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    admin_cert: str
    admin_key: str
    admin_token_file: str
    tokens_file: str
    admin_token: str


def pki_paths(data_dir: str, admin_token: str = "") -> Pki:
    """The file layout under ``<data_dir>/pki`` (nothing is created)."""
    d = os.path.join(data_dir, "pki")
    return Pki(
        dir=d,
        ca_cert=os.path.join(d, "ca.crt"),
        ca_key=os.path.join(d, "ca.key"),
        server_cert=os.path.join(d, "server.crt"),
        server_key=os.path.join(d, "server.key"),
        admin_cert=os.path.join(d, "admin.crt"),
        admin_key=os.path.join(d, "admin.key"),
        admin_token_file=os.path.join(d, "admin.token"),
        tokens_file=os.path.join(d, "tokens.csv"),
        admin_token=admin_token,
    )


# ---------------------------------------------------------------------------------------------
# Pure helpers


def parse_san_entry(host: str) -> SanEntry | None:
    """An IP address or lower-cased DNS name for ``host``; None when it cannot be a SAN.

    Wildcard bind addresses (0.0.0.0, ::) are dropped: no client ever dials them.
    """
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h:
        return None
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return h.lower().rstrip(".") or None
    return None if ip.is_unspecified else ip


def required_sans(hosts: Iterable[str], hostname: str) -> set[SanEntry]:
    """Every SAN the serving certificate must carry for ``hosts`` plus the built-in names."""
    out: set[SanEntry] = set()
    for h in (*DEFAULT_SERVER_HOSTS, hostname, *hosts):
        entry = parse_san_entry(h)
        if entry is not None:
            out.add(entry)
    return out


def cert_sans(cert: x509.Certificate) -> set[SanEntry]:
    """The DNS and IP subject alternative names of ``cert``."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    out: set[SanEntry] = {n.lower() for n in ext.get_values_for_type(x509.DNSName)}
    out.update(ext.get_values_for_type(x509.IPAddress))
    return out


def _sort_key(entry: SanEntry) -> tuple[int, str]:
    return (0, entry) if isinstance(entry, str) else (1, str(entry))


def leaf_is_usable(cert: x509.Certificate, ca_cert: x509.Certificate, now: dt.datetime | None = None) -> bool:
    """Whether ``cert`` was signed by ``ca_cert`` and is not close to expiry.

    A replaced CA invalidates every leaf, which this catches through the signature check.
    """
    now = now or dt.datetime.now(dt.UTC)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_before_utc <= now + BACKDATE and cert.not_valid_after_utc - now > RENEW_BEFORE


# ---------------------------------------------------------------------------------------------
# Certificate construction


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _make_ca(key: ec.EllipticCurvePrivateKey, common_name: str = CA_COMMON_NAME) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier | list[x509.ObjectIdentifier],
    sans: Iterable[SanEntry] = (),
    validity: dt.timedelta = LEAF_VALIDITY,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    pub = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        # A leaf outliving its CA would fail verification anyway; cap it to avoid a confusing cert.
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usage if isinstance(usage, list) else [usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        # OpenSSL's strict mode (default in newer Pythons) rejects leaves without an AKI.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
    )
    general: list[x509.GeneralName] = []
    for entry in sorted(set(sans), key=_sort_key):
        general.append(x509.DNSName(entry) if isinstance(entry, str) else x509.IPAddress(entry))
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


# ---------------------------------------------------------------------------------------------
# Files


# Certificates are not secret, but everything in the data dir is its owner's only:
# one rule is easy to check and keeps a key written next to a cert from leaking.
CERT_MODE = 0o600
DIR_MODE = 0o700
FILE_MODE = 0o600
_FOREIGN_DIRS = ("agent",)  # the node agent's own tree (container state, pod volumes)


def secure_data_dir(data_dir: str) -> list[str]:
    """Make the data dir 0700 and the server's files in it 0600 (also those written by
    older versions or by hand): the store holds Secrets. Returns the paths changed.
    Subdirectories become 0700; files inside them are left alone except under `pki`,
    and the node agent's tree is not touched (its containers need their own modes)."""
    changed: list[str] = []

    def fix(path: str, mode: int) -> None:
        st = os.lstat(path)
        if (st.st_mode & 0o777) != mode:
            os.chmod(path, mode)
            changed.append(path)

    os.makedirs(data_dir, mode=DIR_MODE, exist_ok=True)
    fix(data_dir, DIR_MODE)
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_file():
                fix(entry.path, FILE_MODE)
            elif entry.is_dir() and entry.name not in _FOREIGN_DIRS:
                fix(entry.path, DIR_MODE)
    pki_dir = os.path.join(data_dir, "pki")
    if os.path.isdir(pki_dir):
        for root, dirs, files in os.walk(pki_dir):
            for d in dirs:
                fix(os.path.join(root, d), DIR_MODE)
            for f in files:
                if not os.path.islink(os.path.join(root, f)):
                    fix(os.path.join(root, f), FILE_MODE)
    return changed


def _write_file(path: str, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the start, so secrets are never briefly world-readable."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _read_cert(path: str) -> x509.Certificate | None:
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except (FileNotFoundError, ValueError):
        return None


def _read_key(path: str) -> ec.EllipticCurvePrivateKey | None:
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert, key = _read_cert(pki.ca_cert), _read_key(pki.ca_key)
    if cert is None or key is None:
        raise FileNotFoundError(f"cluster CA missing or unreadable in {pki.dir}")
    return cert, key


def _ensure_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert, key = _read_cert(pki.ca_cert), _read_key(pki.ca_key)
    if cert is not None and key is not None and cert.public_key() == key.public_key():
        return cert, key
    key = _new_key()
    cert = _make_ca(key)
    _write_file(pki.ca_key, _key_pem(key), 0o600)
    _write_file(pki.ca_cert, _cert_pem(cert), CERT_MODE)
    return cert, key


def _ensure_server_cert(
    pki: Pki, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, wanted: set[SanEntry]
) -> None:
    cert, key = _read_cert(pki.server_cert), _read_key(pki.server_key)
    if cert is not None and key is not None and cert.public_key() == key.public_key():
        have = cert_sans(cert)
        if wanted <= have and leaf_is_usable(cert, ca_cert):
            return
        # Keep names served before, so clients configured with an older address keep working.
        wanted = wanted | have
    key = _new_key()
    cert = _make_leaf(
        ca_cert, ca_key, key, _name(SERVER_COMMON_NAME), ExtendedKeyUsageOID.SERVER_AUTH, wanted
    )
    _write_file(pki.server_key, _key_pem(key), 0o600)
    _write_file(pki.server_cert, _cert_pem(cert), CERT_MODE)


def _ensure_admin_cert(pki: Pki, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
    cert, key = _read_cert(pki.admin_cert), _read_key(pki.admin_key)
    if (
        cert is not None
        and key is not None
        and cert.public_key() == key.public_key()
        and leaf_is_usable(cert, ca_cert)
    ):
        return
    key = _new_key()
    cert = _make_leaf(ca_cert, ca_key, key, _name(ADMIN_USER, [ADMIN_GROUP]), ExtendedKeyUsageOID.CLIENT_AUTH)
    _write_file(pki.admin_key, _key_pem(key), 0o600)
    _write_file(pki.admin_cert, _cert_pem(cert), CERT_MODE)


def _ensure_admin_token(pki: Pki) -> str:
    try:
        with open(pki.admin_token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token
    token = secrets.token_urlsafe(32)
    _write_file(pki.admin_token_file, (token + "\n").encode(), 0o600)
    return token


# ---------------------------------------------------------------------------------------------
# Public API


def ensure_pki(data_dir: str, hosts: list[str]) -> Pki:
    """Create, or reuse, the cluster PKI under ``<data_dir>/pki``.

    The CA is only created when absent (or unusable); the serving certificate is reissued when a
    requested host is missing from its SANs, when it nears expiry or was signed by another CA.
    """
    pki = pki_paths(data_dir)
    os.makedirs(pki.dir, mode=0o700, exist_ok=True)
    ca_cert, ca_key = _ensure_ca(pki)
    _ensure_server_cert(pki, ca_cert, ca_key, required_sans(hosts, socket.gethostname()))
    _ensure_admin_cert(pki, ca_cert, ca_key)
    pki.admin_token = _ensure_admin_token(pki)
    return pki


def ensure_cluster_ca(data_dir: str) -> Pki:
    """Create, or reuse, what every server of a cluster shares and nothing else: the CA and
    the admin bearer token (the first server stores them for the others, serverjoin.py)."""
    pki = pki_paths(data_dir)
    os.makedirs(pki.dir, mode=0o700, exist_ok=True)
    _ensure_ca(pki)
    pki.admin_token = _ensure_admin_token(pki)
    return pki


def read_ca_pem(pki: Pki) -> bytes:
    """The CA certificate in PEM (e.g. for the ``kube-root-ca.crt`` ConfigMap)."""
    with open(pki.ca_cert, "rb") as f:
        return f.read()


def server_ssl_context(pki: Pki) -> ssl.SSLContext:
    """TLS server context: serves the server cert, asks for (but does not demand) client certs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    # Optional: clients using bearer tokens or no credentials at all must still connect; a
    # presented certificate that does not verify still fails the handshake.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # We only speak HTTP/1.1; offering h2 would make Go clients pick it.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def issue_client_cert(
    pki: Pki, common_name: str, groups: list[str], validity: dt.timedelta = LEAF_VALIDITY
) -> tuple[bytes, bytes]:
    """A client certificate for user ``common_name`` in ``groups``: (cert PEM, key PEM)."""
    ca_cert, ca_key = _load_ca(pki)
    key = _new_key()
    cert = _make_leaf(
        ca_cert, ca_key, key, _name(common_name, groups), ExtendedKeyUsageOID.CLIENT_AUTH, validity=validity
    )
    return _cert_pem(cert), _key_pem(key)


def kubeconfig_dict(
    ca_pem: bytes,
    server_url: str,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
) -> dict:
    """An admin kubeconfig document with all credentials embedded."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    user: dict[str, str] = {}
    if token is not None:
        user["token"] = token
    else:
        if client_cert_pem is None or client_key_pem is None:
            raise ValueError("a client certificate and key, or a token, are required")
        user["client-certificate-data"] = b64(client_cert_pem)
        user["client-key-data"] = b64(client_key_pem)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server_url, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [{"name": ADMIN_USER, "user": user}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CLUSTER_NAME, "user": ADMIN_USER}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }


NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"


def write_node_kubeconfig(pki: Pki, path: str, server_url: str, node: str) -> None:
    """Write a kubeconfig (mode 0600) with a fresh client certificate for node ``node``
    (``system:node:<node>`` in ``system:nodes``): the identity the Node authorizer and
    NodeRestriction know, for an agent the server starts itself."""
    cert_pem, key_pem = issue_client_cert(pki, NODE_USER_PREFIX + node, [NODES_GROUP])
    doc = kubeconfig_dict(read_ca_pem(pki), server_url, client_cert_pem=cert_pem, client_key_pem=key_pem)
    _write_file(path, yaml.safe_dump(doc, sort_keys=False).encode("utf-8"), 0o600)


# The control-plane components' users, as kubeadm names them: no group, so each holds only
# what the bootstrap policy binds to it (api/rbac_bootstrap.py), never system:masters.
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"


def write_component_kubeconfig(pki: Pki, path: str, server_url: str, user: str) -> None:
    """Write a kubeconfig (mode 0600) with a fresh client certificate for control-plane
    user ``user`` (no group), for a component the server starts itself."""
    cert_pem, key_pem = issue_client_cert(pki, user, [])
    doc = kubeconfig_dict(read_ca_pem(pki), server_url, client_cert_pem=cert_pem, client_key_pem=key_pem)
    doc["users"][0]["name"] = doc["contexts"][0]["context"]["user"] = user
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    _write_file(path, yaml.safe_dump(doc, sort_keys=False).encode("utf-8"), 0o600)


def write_kubeconfig(pki: Pki, path: str, server_url: str, use_token: bool = False) -> None:
    """Write an admin kubeconfig for ``server_url`` to ``path`` (mode 0600)."""
    ca_pem = read_ca_pem(pki)
    if use_token:
        doc = kubeconfig_dict(ca_pem, server_url, token=pki.admin_token)
    else:
        with open(pki.admin_cert, "rb") as f:
            cert_pem = f.read()
        with open(pki.admin_key, "rb") as f:
            key_pem = f.read()
        doc = kubeconfig_dict(ca_pem, server_url, client_cert_pem=cert_pem, client_key_pem=key_pem)
    _write_file(path, yaml.safe_dump(doc, sort_keys=False).encode("utf-8"), 0o600)


# The API server's identity towards node agents: no group, so it holds only what RBAC
# grants this user (system:kubelet-api-admin), never system:masters.
AGENT_CLIENT_USER = "system:kube-apiserver"
AGENT_CLIENT_CERT = "apiserver-kubelet-client.crt"
AGENT_CLIENT_KEY = "apiserver-kubelet-client.key"


def _ensure_agent_client_cert(pki: Pki) -> tuple[str, str]:
    cert_path = os.path.join(pki.dir, AGENT_CLIENT_CERT)
    key_path = os.path.join(pki.dir, AGENT_CLIENT_KEY)
    cert, key = _read_cert(cert_path), _read_key(key_path)
    ca_cert, _ = _load_ca(pki)
    user = user_of(cert) if cert is not None else None
    if (cert is None or key is None or cert.public_key() != key.public_key() or not leaf_is_usable(cert, ca_cert)
            or user != (AGENT_CLIENT_USER, [])):
        cert_pem, key_pem = issue_client_cert(pki, AGENT_CLIENT_USER, [])
        _write_file(key_path, key_pem, 0o600)
        _write_file(cert_path, cert_pem, CERT_MODE)
    return cert_path, key_path


def user_of(cert: x509.Certificate) -> tuple[str, list[str]]:
    """(common name, organizations) of a certificate's subject."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", [str(o.value) for o in orgs])


def agent_client_ssl_context(pki: Pki) -> ssl.SSLContext:
    """TLS client context for calls to node agents (pods/log, exec, nodes/proxy): the
    client certificate of user `system:kube-apiserver` (no group), and the agent's
    serving certificate verified against the cluster CA, for the host name each call
    names (the node's name, see `apiserver.agentdial`), as kube-apiserver does with
    --kubelet-certificate-authority."""
    cert_path, key_path = _ensure_agent_client_cert(pki)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki.ca_cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


# ---------------------------------------------------------------------------------------------
# The embedded etcd member (`kyb server --cluster-init`)

# etcd trusts its own CA, not the cluster's: the cluster CA also signs node and user client
# certificates (approved CSRs), and any of them would otherwise pass etcd's client and peer
# certificate checks and read or write the store around RBAC (kubeadm and k3s do the same).
ETCD_CA_COMMON_NAME = "kybernetes-etcd-ca"
ETCD_SERVER_COMMON_NAME = "kybernetes-etcd"
ETCD_CLIENT_USER = "kube-apiserver-etcd-client"


@dataclass(frozen=True)
class EtcdPki:
    """Paths of the etcd member's TLS files and of the API server's client certificate for it."""

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    peer_cert: str
    peer_key: str
    client_cert: str
    client_key: str


def etcd_pki_paths(data_dir: str) -> EtcdPki:
    """The layout under ``<data_dir>/pki/etcd`` (nothing is created)."""
    d = os.path.join(data_dir, "pki", "etcd")
    return EtcdPki(*(os.path.join(d, n) for n in (
        "ca.crt", "ca.key", "server.crt", "server.key", "peer.crt", "peer.key",
        "apiserver-etcd-client.crt", "apiserver-etcd-client.key")))


def etcd_member_sans(hosts: Iterable[str], hostname: str) -> set[SanEntry]:
    """The names an etcd member's serving and peer certificates carry: loopback, the host
    name and ``hosts`` (the addresses other members and API servers dial)."""
    out: set[SanEntry] = set()
    for h in ("127.0.0.1", "::1", "localhost", hostname, *hosts):
        entry = parse_san_entry(h)
        if entry is not None:
            out.add(entry)
    return out


def _ensure_leaf(cert_path: str, key_path: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                 subject: x509.Name, usages: list[x509.ObjectIdentifier], wanted: set[SanEntry]) -> None:
    cert, key = _read_cert(cert_path), _read_key(key_path)
    if cert is not None and key is not None and cert.public_key() == key.public_key():
        have = cert_sans(cert)
        if wanted <= have and leaf_is_usable(cert, ca_cert) and cert.subject == subject:
            return
        wanted = wanted | have  # as for the API server: names dialled before keep working
    key = _new_key()
    cert = _make_leaf(ca_cert, ca_key, key, subject, usages, wanted)
    _write_file(key_path, _key_pem(key), 0o600)
    _write_file(cert_path, _cert_pem(cert), CERT_MODE)


def ensure_etcd_pki(data_dir: str, hosts: Iterable[str]) -> EtcdPki:
    """Create, or reuse, the etcd CA, the member's serving and peer certificates (SANs: see
    `etcd_member_sans`) and the API server's etcd client certificate, all keys 0600."""
    paths = etcd_pki_paths(data_dir)
    os.makedirs(os.path.join(data_dir, "pki"), mode=DIR_MODE, exist_ok=True)
    os.makedirs(os.path.dirname(paths.ca_cert), mode=DIR_MODE, exist_ok=True)
    ca_cert, ca_key = _read_cert(paths.ca_cert), _read_key(paths.ca_key)
    if ca_cert is None or ca_key is None or ca_cert.public_key() != ca_key.public_key():
        ca_key = _new_key()
        ca_cert = _make_ca(ca_key, ETCD_CA_COMMON_NAME)
        _write_file(paths.ca_key, _key_pem(ca_key), 0o600)
        _write_file(paths.ca_cert, _cert_pem(ca_cert), CERT_MODE)
    sans = etcd_member_sans(hosts, socket.gethostname())
    # etcd's gRPC gateway dials its own member with the serving certificate as a client
    # certificate, and peers dial each other with theirs: both need both usages.
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    _ensure_leaf(paths.server_cert, paths.server_key, ca_cert, ca_key, _name(ETCD_SERVER_COMMON_NAME), both, sans)
    _ensure_leaf(paths.peer_cert, paths.peer_key, ca_cert, ca_key, _name(ETCD_SERVER_COMMON_NAME), both, sans)
    _ensure_leaf(paths.client_cert, paths.client_key, ca_cert, ca_key, _name(ETCD_CLIENT_USER),
                 [ExtendedKeyUsageOID.CLIENT_AUTH], set())
    return paths
