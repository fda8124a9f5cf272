"""Tests for the cluster PKI (kybernetes.apiserver.pki) and request authentication (auth)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from kybernetes.apiserver import pki as pkimod
from kybernetes.apiserver.auth import (
    Authenticator,
    UserInfo,
    parse_bearer,
    parse_token_csv,
    self_subject_review,
)
from kybernetes.apiserver.pki import ensure_pki, issue_client_cert, server_ssl_context, write_kubeconfig

ADMIN_GROUPS = ["system:masters", "system:authenticated"]


def _load(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------------------------------------
# PKI files


def test_first_start_creates_ca_server_admin_and_token(tmp_path):
    p = ensure_pki(str(tmp_path), [])
    assert p.dir == str(tmp_path / "pki")
    ca = _load(p.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kybernetes-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime.days >= 3650

    admin = _load(p.admin_cert)
    admin.verify_directly_issued_by(ca)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kybernetes-admin"
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    _load(p.server_cert).verify_directly_issued_by(ca)

    assert len(p.admin_token) >= 43  # 32 random bytes, url-safe base64
    assert _read(p.admin_token_file).decode().strip() == p.admin_token
    for secret in (p.ca_key, p.server_key, p.admin_key, p.admin_token_file):
        assert _mode(secret) == 0o600, secret


def test_second_start_reuses_everything(tmp_path):
    first = ensure_pki(str(tmp_path), ["10.0.0.5"])
    before = {f: _read(f) for f in (first.ca_cert, first.ca_key, first.server_cert, first.admin_cert)}
    second = ensure_pki(str(tmp_path), ["10.0.0.5"])
    assert second.admin_token == first.admin_token
    assert {f: _read(f) for f in before} == before


def test_server_cert_sans(tmp_path):
    p = ensure_pki(str(tmp_path), ["10.1.2.3", "API.Example.com", "fd00::7", "0.0.0.0"])
    sans = _load(p.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(sans.get_values_for_type(x509.DNSName))
    ips = set(sans.get_values_for_type(x509.IPAddress))
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "api.example.com",
        socket.gethostname().lower(),
    } <= dns
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.1.2.3", "fd00::7")} == ips


def test_server_cert_regenerated_only_when_a_host_is_missing(tmp_path):
    p = ensure_pki(str(tmp_path), ["10.0.0.1"])
    ca_before, server_before = _read(p.ca_cert), _read(p.server_cert)

    ensure_pki(str(tmp_path), ["localhost", "10.0.0.1"])
    assert _read(p.server_cert) == server_before

    ensure_pki(str(tmp_path), ["10.0.0.1", "node-b.lan"])
    assert _read(p.ca_cert) == ca_before
    new = _load(p.server_cert)
    assert _read(p.server_cert) != server_before
    new.verify_directly_issued_by(_load(p.ca_cert))
    sans = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node-b.lan" in sans.get_values_for_type(x509.DNSName)
    # The previously served address is kept.
    assert ipaddress.ip_address("10.0.0.1") in sans.get_values_for_type(x509.IPAddress)


def test_replaced_ca_reissues_leaves(tmp_path):
    p = ensure_pki(str(tmp_path), [])
    old_ca = _read(p.ca_cert)
    os.unlink(p.ca_key)
    ensure_pki(str(tmp_path), [])
    assert _read(p.ca_cert) != old_ca
    ca = _load(p.ca_cert)
    _load(p.server_cert).verify_directly_issued_by(ca)
    _load(p.admin_cert).verify_directly_issued_by(ca)


def test_parse_san_entry():
    assert pkimod.parse_san_entry("[::1]") == ipaddress.ip_address("::1")
    assert pkimod.parse_san_entry("Host.Example.") == "host.example"
    assert pkimod.parse_san_entry("::") is None
    assert pkimod.parse_san_entry("  ") is None


# ---------------------------------------------------------------------------------------------
# kubeconfig


def test_kubeconfig_with_client_cert_loads_in_python_client(tmp_path):
    from kubernetes import client, config

    p = ensure_pki(str(tmp_path), [])
    path = str(tmp_path / "out" / "admin.conf")
    write_kubeconfig(p, path, "https://127.0.0.1:6443")
    assert _mode(path) == 0o600

    with open(path) as f:
        doc = yaml.safe_load(f)
    assert doc["current-context"] == "kybernetes"
    assert doc["contexts"] == [
        {"name": "kybernetes", "context": {"cluster": "kybernetes", "user": "kybernetes-admin"}}
    ]
    cluster = doc["clusters"][0]
    assert cluster["name"] == "kybernetes"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == _read(p.ca_cert)
    user = doc["users"][0]
    assert user["name"] == "kybernetes-admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == _read(p.admin_cert)
    assert "token" not in user["user"]

    cfg = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=cfg)
    assert cfg.host == "https://127.0.0.1:6443"
    assert _read(cfg.ssl_ca_cert) == _read(p.ca_cert)
    assert _read(cfg.cert_file) == _read(p.admin_cert)
    assert _read(cfg.key_file) == _read(p.admin_key)
    assert not cfg.api_key


def test_kubeconfig_with_token(tmp_path):
    from kubernetes import client, config

    p = ensure_pki(str(tmp_path), [])
    path = str(tmp_path / "token.conf")
    write_kubeconfig(p, path, "https://localhost:6443", use_token=True)
    with open(path) as f:
        user = yaml.safe_load(f)["users"][0]["user"]
    assert user == {"token": p.admin_token}

    cfg = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=cfg)
    bearer = cfg.auth_settings()["BearerToken"]
    assert (bearer["key"], bearer["value"]) == ("authorization", f"Bearer {p.admin_token}")
    assert cfg.cert_file is None


# ---------------------------------------------------------------------------------------------
# TLS


async def _serve(p: pkimod.Pki, handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ssl_context(p))
    return server, server.sockets[0].getsockname()[1]


async def test_tls_handshake_with_admin_cert_from_kubeconfig(tmp_path):
    from kubernetes import client, config

    p = ensure_pki(str(tmp_path), [])
    kc = str(tmp_path / "admin.conf")
    write_kubeconfig(p, kc, "https://127.0.0.1:1")
    cfg = client.Configuration()
    config.load_kube_config(config_file=kc, client_configuration=cfg)

    auth = Authenticator(p)
    seen: list[tuple] = []

    async def handler(reader, writer):
        obj = writer.get_extra_info("ssl_object")
        seen.append((obj.getpeercert(), obj.getpeercert(binary_form=True), obj.selected_alpn_protocol()))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server, port = await _serve(p, handler)
    async with server:
        for with_cert in (True, False):
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            if with_cert:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            # Connect by IP: the handshake must also verify the 127.0.0.1 IP SAN.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            assert await reader.read() == b"ok"
            writer.close()

    (cert_dict, der, alpn), (no_dict, no_der, _) = seen
    assert alpn == "http/1.1"
    assert cert_dict and der
    for form in (cert_dict, der):
        user = auth.authenticate(form, None)
        assert user == UserInfo(username="kybernetes-admin", groups=ADMIN_GROUPS)
    # A certificate wins over a (bad) token, as in kube-apiserver.
    assert auth.authenticate(cert_dict, "Bearer nope").username == "kybernetes-admin"

    assert no_dict is None and no_der is None
    anon = auth.authenticate(no_dict, None)
    assert anon == UserInfo(username="system:anonymous", groups=["system:unauthenticated"])


async def test_tls_rejects_client_cert_from_another_ca(tmp_path):
    p = ensure_pki(str(tmp_path / "a"), [])
    other = ensure_pki(str(tmp_path / "b"), [])

    called: list[bool] = []

    async def handler(reader, writer):
        called.append(True)
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server, port = await _serve(p, handler)
    async with server:
        ctx = ssl.create_default_context(cafile=p.ca_cert)
        ctx.load_cert_chain(other.admin_cert, other.admin_key)
        try:
            # With TLS 1.3 the client finishes its side first and only sees the rejection as EOF.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            received = await reader.read()
        except (ssl.SSLError, ConnectionError):
            received = b""
    assert received == b""
    assert called == []

    # And the DER path refuses a foreign certificate on its own.
    with open(other.admin_cert, "rb") as f:
        der = x509.load_pem_x509_certificate(f.read()).public_bytes(Encoding.DER)
    auth = Authenticator(p)
    assert auth.authenticate(der, None) is None
    # A valid token still gets through, as with kube-apiserver's union of authenticators.
    assert auth.authenticate(der, f"Bearer {p.admin_token}").username == "kybernetes-admin"
    assert auth.authenticate(b"not a certificate", None) is None


def _kubectl() -> str | None:
    here = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv", "bin"
    )
    return shutil.which("kubectl", path=here) or shutil.which("kubectl")


@pytest.mark.skipif(_kubectl() is None, reason="kubectl not installed")
async def test_kubectl_accepts_server_cert_and_presents_credentials(tmp_path):
    """Go's TLS stack is stricter than OpenSSL; check it trusts our chain and sends both credential kinds."""
    p = ensure_pki(str(tmp_path), [])
    auth = Authenticator(p)

    async def handler(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
        )
        obj = writer.get_extra_info("ssl_object")
        user = auth.authenticate(obj.getpeercert(), headers.get("Authorization"))
        body = json.dumps(self_subject_review(user) if user else {}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server, port = await _serve(p, handler)
    async with server:
        for use_token in (False, True):
            kc = str(tmp_path / f"kc-{use_token}")
            write_kubeconfig(p, kc, f"https://127.0.0.1:{port}", use_token=use_token)
            proc = await asyncio.create_subprocess_exec(
                _kubectl(),
                "--kubeconfig",
                kc,
                "get",
                "--raw",
                "/whoami",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "HOME": str(tmp_path)},
            )
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
            info = json.loads(out)["status"]["userInfo"]
            assert info == {"username": "kybernetes-admin", "groups": ADMIN_GROUPS}


# ---------------------------------------------------------------------------------------------
# Authenticator


def test_issued_client_cert_maps_to_cn_and_orgs(tmp_path):
    p = ensure_pki(str(tmp_path), [])
    cert_pem, key_pem = issue_client_cert(p, "alice", ["devs", "ops"])
    assert b"PRIVATE KEY" in key_pem
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(_load(p.ca_cert))
    user = Authenticator(p).authenticate(cert.public_bytes(Encoding.DER), None)
    assert user == UserInfo(username="alice", groups=["devs", "ops", "system:authenticated"])


def test_peercert_dict_shape():
    # The shape ssl.SSLObject.getpeercert() returns, including a multi-valued RDN.
    peer = {
        "subject": (
            (("organizationName", "g1"),),
            (("organizationName", "g2"), ("commonName", "bob")),
        ),
        "issuer": ((("commonName", "kybernetes-ca"),),),
    }
    user = Authenticator().authenticate(peer, None)
    assert user == UserInfo(username="bob", groups=["g1", "g2", "system:authenticated"])
    # No CN: not a usable certificate identity, so the request is treated as carrying none.
    assert Authenticator().authenticate({"subject": ((("organizationName", "x"),),)}, None).username == (
        "system:anonymous"
    )


def test_tokens(tmp_path):
    p = ensure_pki(str(tmp_path), [])
    with open(p.tokens_file, "w") as f:
        f.write('t-carol,carol,1001,"devs,qa"\n\nt-dave,dave,1002\n')
    auth = Authenticator(p, tokens={"t-erin": UserInfo(username="erin", extra={"team": ["a"]})})

    assert auth.authenticate(None, f"Bearer {p.admin_token}") == UserInfo(
        username="kybernetes-admin", groups=ADMIN_GROUPS
    )
    assert auth.authenticate(None, "bearer t-carol") == UserInfo(
        username="carol", uid="1001", groups=["devs", "qa", "system:authenticated"]
    )
    assert auth.authenticate({}, "Bearer t-dave").groups == ["system:authenticated"]
    assert auth.authenticate(None, "Bearer t-erin").extra == {"team": ["a"]}

    assert auth.authenticate(None, "Bearer wrong") is None
    assert auth.authenticate(None, f"Bearer {p.admin_token}x") is None
    # Not a bearer credential at all: anonymous, like kube-apiserver.
    assert auth.authenticate(None, "Basic Zm9vOmJhcg==").username == "system:anonymous"
    assert auth.authenticate(None, None).groups == ["system:unauthenticated"]

    # The returned user is a copy; callers cannot corrupt the table.
    auth.authenticate(None, "Bearer t-dave").groups.append("system:masters")
    assert auth.authenticate(None, "Bearer t-dave").groups == ["system:authenticated"]

    auth.remove_token("t-dave")
    assert auth.authenticate(None, "Bearer t-dave") is None


def test_parse_bearer_and_token_csv():
    assert parse_bearer("Bearer abc") == "abc"
    assert parse_bearer("  BEARER abc extra") == "abc"
    assert parse_bearer("Bearer") is None
    assert parse_bearer("Bearer  x") is None  # empty token between the two spaces
    assert parse_bearer("") is None

    table = parse_token_csv('a,u1,1\n# comment\nb,u2,2,"x,y"\n,skipped,3\n')
    assert set(table) == {"a", "b"}
    assert table["b"] == UserInfo(username="u2", uid="2", groups=["x", "y"])
    with pytest.raises(ValueError, match="line 1"):
        parse_token_csv("only,two\n")


def test_self_subject_review():
    body = self_subject_review(
        UserInfo(username="alice", uid="1001", groups=["devs", "system:authenticated"], extra={"team": ["a"]})
    )
    assert body == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {},
        "status": {
            "userInfo": {
                "username": "alice",
                "uid": "1001",
                "groups": ["devs", "system:authenticated"],
                "extra": {"team": ["a"]},
            }
        },
    }
    assert self_subject_review(UserInfo(username="x"))["status"]["userInfo"] == {"username": "x"}
