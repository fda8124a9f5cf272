"""The request-forgery defences (CVE-2020-8559, CVE-2022-3294 class) without a server:
node addresses are validated, the dialer refuses loopback and the server's own
endpoint, the agent must prove its node's identity before a request is written,
redirects are never followed, the API server's agent identity is not system:masters,
and the agent's own API authenticates and authorizes every caller."""

from __future__ import annotations

import base64
import datetime as dt
import os
import ssl
import stat
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes.agent.apiauth import AgentAuth, Caller, caller_from_peercert, subresource_for
from kybernetes.agent.servingcert import cert_is_usable, csr_object, signing_request, wanted_names
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import strategy_for
from kybernetes.api.kinds.proxying import agent_endpoint, host_problem
from kybernetes.api.registry import Registry
from kybernetes.apiserver import pki
from kybernetes.apiserver.agentdial import (
    AgentDialer,
    AgentIdentityError,
    RedirectRefused,
    node_identity_problem,
    refusal,
)
from kybernetes.controllers.csrsigning import Fail, Sign, decide, issue
from kybernetes.testing.cluster import free_port

NOW = dt.datetime.now(dt.UTC)
FORGED = "127.0.0.1:6443/api/v1/namespaces/default/secrets?x="


# -- node addresses ------------------------------------------------------------------------


def _node_errors(addresses: list[dict[str, Any]], port: Any = 10250) -> list[str]:
    reg = Registry()
    info = reg.get("", "v1", "nodes")
    node = {"metadata": {"name": "n1"}, "spec": {},
            "status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    return [f"{e.field}: {e.detail}" for e in strategy_for(info).validate(info, node)]


@pytest.mark.parametrize("address", [FORGED, "10.0.0.1:10250", "10.0.0.1/x", "10.0.0.1?y", "http://10.0.0.1",
                                     "user@10.0.0.1", "[::1]", "fe80::1%eth0", "node.example.com"])
def test_ip_addresses_of_a_node_must_be_bare_ips(address):
    errs = _node_errors([{"type": "InternalIP", "address": address}])
    assert errs == ["status.addresses[0].address: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]


@pytest.mark.parametrize("address", [FORGED, "node:10250", "node/x", "a..b", "-node", "node name"])
def test_host_names_of_a_node_must_be_dns_names(address):
    errs = _node_errors([{"type": "Hostname", "address": address}])
    assert len(errs) == 1 and "RFC 1123 subdomain" in errs[0]


def test_good_node_addresses_and_ports_pass_and_bad_ports_do_not():
    good = [{"type": "InternalIP", "address": "10.42.0.7"}, {"type": "InternalIP", "address": "2001:db8::7"},
            {"type": "Hostname", "address": "Worker-1.example.com"}, {"type": "ExternalDNS", "address": "10.1.1.1"}]
    assert _node_errors(good) == []
    assert _node_errors(good, port=70000) == [
        "status.daemonEndpoints.kubeletEndpoint.Port: must be between 0 and 65535, inclusive"]


def test_an_address_stored_before_validation_is_never_dialled():
    node = {"status": {"addresses": [{"type": "InternalIP", "address": FORGED},
                                     {"type": "Hostname", "address": "worker-1"}]}}
    assert agent_endpoint(node) == ("worker-1", 10250)
    assert agent_endpoint({"status": {"addresses": [{"type": "InternalIP", "address": FORGED}]}}) is None
    assert host_problem("InternalIP", "10.0.0.1") is None


# -- where the server may dial -------------------------------------------------------------


def test_loopback_link_local_unspecified_and_multicast_are_refused():
    for ip in ("127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1",
               "::ffff:127.0.0.1"):
        assert refusal([ip], 10250, None, lambda _a: False) == "address not allowed", ip
    assert refusal([], 10250, None) == "address not allowed"
    assert refusal(["10.0.0.1", "127.0.0.1"], 10250, None, lambda _a: False) == "address not allowed"


def test_the_api_servers_own_endpoint_is_refused_but_its_host_is_not():
    mine = {"10.9.9.9"}
    local = mine.__contains__
    assert refusal(["10.9.9.9"], 6443, ("0.0.0.0", 6443), local) == "address not allowed"
    assert refusal(["10.1.2.3"], 6443, ("10.1.2.3", 6443), local) == "address not allowed"
    # An agent on the API server's own host, on its own port, is fine.
    assert refusal(["10.9.9.9"], 10250, ("0.0.0.0", 6443), local) is None
    assert refusal(["10.5.5.5"], 6443, ("0.0.0.0", 6443), local) is None


async def test_the_dialer_resolves_host_names_and_refuses_any_bad_answer():
    async def resolve(host: str) -> list[str]:
        return {"good": ["10.0.0.5"], "rebind": ["10.0.0.5", "127.0.0.1"]}.get(host, [])

    dialer = AgentDialer(None, resolve, local=lambda _a: False)
    await dialer.check("good", 10250, None)
    for host, message in (("rebind", "address not allowed"), ("none", "no addresses for hostname none")):
        with pytest.raises(ApiError) as e:
            await dialer.check(host, 10250, None)
        assert (e.value.code, e.value.message) == (400, message)


# -- who the agent is ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> pki.Pki:
    return pki.ensure_pki(str(tmp_path_factory.mktemp("data")), [])


def _serving_cert(cluster: pki.Pki, directory: str, cn: str, orgs: list[str], names: list[str]) -> tuple[str, str]:
    """A serving certificate of the cluster CA with any subject (a node's, or a forger's)."""
    ca_cert, ca_key = pki._load_ca(cluster)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = {pki.parse_san_entry(n) for n in names} - {None}
    cert = pki._make_leaf(ca_cert, ca_key, key, pki._name(cn, orgs), pki.ExtendedKeyUsageOID.SERVER_AUTH,
                          sans)  # type: ignore[arg-type]
    os.makedirs(directory, exist_ok=True)
    cert_path, key_path = os.path.join(directory, f"{cn}.crt"), os.path.join(directory, f"{cn}.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(pki._key_pem(key))
    return cert_path, key_path


def test_the_api_servers_agent_identity_is_not_system_masters(cluster):
    ctx = pki.agent_client_ssl_context(cluster)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    path = os.path.join(cluster.dir, pki.AGENT_CLIENT_CERT)
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert pki.user_of(cert) == ("system:kube-apiserver", [])
    for name in (pki.AGENT_CLIENT_CERT, pki.AGENT_CLIENT_KEY):
        assert stat.S_IMODE(os.stat(os.path.join(cluster.dir, name)).st_mode) == 0o600


def test_only_the_nodes_own_certificate_is_its_agents(cluster, tmp_path):
    good, _ = _serving_cert(cluster, str(tmp_path), "system:node:n1", ["system:nodes"], ["n1"])
    server, _ = _serving_cert(cluster, str(tmp_path), "kybernetes-apiserver", [], ["n1", "localhost"])
    other, _ = _serving_cert(cluster, str(tmp_path), "system:node:n2", ["system:nodes"], ["n1", "n2"])
    load = lambda p: x509.load_pem_x509_certificate(open(p, "rb").read())  # noqa: E731, SIM115
    assert node_identity_problem(load(good), "n1") is None
    assert "belongs to 'kybernetes-apiserver'" in (node_identity_problem(load(server), "n1") or "")
    assert node_identity_problem(load(other), "n1") is not None


@pytest.fixture
async def agents(cluster, tmp_path):
    """HTTPS servers on 127.0.0.1 with various certificates; yields (start, hits)."""
    hits: list[str] = []
    runners: list[web.AppRunner] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound("/containerLogs/x")
        return web.Response(text="agent says hi")

    async def start(cert: tuple[str, str]) -> int:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
        runners.append(runner)
        return port

    yield start, hits
    for r in runners:
        await r.cleanup()


async def test_the_dialer_reaches_only_the_named_nodes_agent_and_never_follows_redirects(cluster, tmp_path, agents):
    start, hits = agents
    dialer = AgentDialer(pki.agent_client_ssl_context(cluster))
    good = await start(_serving_cert(cluster, str(tmp_path), "system:node:n1", ["system:nodes"], ["n1"]))
    async with dialer.session().get(f"https://127.0.0.1:{good}/healthz", **dialer.tls_options("n1")) as r:
        assert await r.text() == "agent says hi"
    # The name is checked: n2's call to n1's agent fails in the handshake.
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await dialer.session().get(f"https://127.0.0.1:{good}/x", **dialer.tls_options("n2"))
    # A cluster-CA certificate naming the node but not the node's own (the API server's).
    forger = await start(_serving_cert(cluster, str(tmp_path), "kybernetes-apiserver", [], ["n1"]))
    with pytest.raises(AgentIdentityError):
        await dialer.session().get(f"https://127.0.0.1:{forger}/api/v1/secrets", **dialer.tls_options("n1"))
    # Self-signed: no chain to the cluster CA.
    other = pki.ensure_pki(str(tmp_path / "other"), [])
    stranger = await start(_serving_cert(other, str(tmp_path / "o"), "system:node:n1", ["system:nodes"], ["n1"]))
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await dialer.session().get(f"https://127.0.0.1:{stranger}/x", **dialer.tls_options("n1"))
    assert hits == ["/healthz"]  # nothing else was ever written to a wrong peer
    with pytest.raises(RedirectRefused):
        await dialer.session().ws_connect(f"https://127.0.0.1:{good}/redirect", **dialer.tls_options("n1"))
    assert hits == ["/healthz", "/redirect"]
    await dialer.close()


# -- the agent's serving certificate -------------------------------------------------------


def test_the_agents_csr_is_signed_as_its_nodes_serving_certificate(cluster):
    key = ec.generate_private_key(ec.SECP256R1())
    names = wanted_names("n1", ["10.0.0.4", "n1-host"])
    csr = csr_object("n1", signing_request(key, "n1", names))
    assert decide(csr) is None  # not approved yet
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    assert decide(csr) == Sign()
    ca_cert, ca_key = pki._load_ca(cluster)
    cert = x509.load_pem_x509_certificate(issue(csr, ca_cert, ca_key, NOW))
    assert node_identity_problem(cert, "n1") is None
    assert cert_is_usable(cert, ca_cert, "n1", names, NOW)
    assert not cert_is_usable(cert, ca_cert, "n1", names | {"n1-new"}, NOW)
    assert not cert_is_usable(cert, ca_cert, "n2", wanted_names("n2", []), NOW)
    assert not cert_is_usable(cert, ca_cert, "n1", names, NOW + dt.timedelta(days=330))


def test_the_serving_signer_refuses_what_is_not_a_nodes_serving_certificate():
    key = ec.generate_private_key(ec.SECP256R1())
    approved = {"conditions": [{"type": "Approved", "status": "True"}]}
    csr = {**csr_object("n1", signing_request(key, "n1", {"n1"})), "status": approved}
    csr["spec"]["usages"] = ["digital signature", "client auth"]
    assert decide(csr) == Fail("SignerValidationFailure",
                               "usages did not match [digital signature key encipherment server auth]")
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    forged = (x509.CertificateSigningRequestBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1")]))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("n1")]), critical=False)
              .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    csr = {**csr_object("n1", forged), "status": approved}
    assert decide(csr) == Fail("SignerValidationFailure", "subject organization is not system:nodes")


# -- the agent's own API -------------------------------------------------------------------


def test_agent_paths_map_to_node_subresources_as_the_kubelet_maps_them():
    assert [subresource_for(p) for p in ("/logs", "/logs/syslog", "/stats/summary", "/metrics", "/metrics/cadvisor",
                                         "/containerLogs/ns/p/c", "/exec/ns/p/c", "/portForward/ns/p", "/healthz",
                                         "/logsx", "/")] == [
        "log", "log", "stats", "metrics", "metrics", "proxy", "proxy", "proxy", "proxy", "proxy", "proxy"]
    peer = {"subject": ((("organizationName", "system:nodes"),), (("commonName", "system:node:n1"),))}
    assert caller_from_peercert(peer) == Caller("system:node:n1", ("system:nodes", "system:authenticated"))
    assert caller_from_peercert(None) is None


class _ReviewingClient:
    """Answers TokenReviews and SubjectAccessReviews like an API server would."""

    def __init__(self, tokens: dict[str, str], allowed: set[tuple[str, str, str]]) -> None:
        self.tokens, self.allowed, self.calls = tokens, allowed, []

    async def create(self, res: Any, namespace: Any, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.calls.append(obj["kind"])
        if obj["kind"] == "TokenReview":
            user = self.tokens.get(obj["spec"]["token"])
            return {"status": {"authenticated": True, "user": {"username": user, "groups": ["g"]}}
                    if user else {"authenticated": False}}
        attrs = obj["spec"]["resourceAttributes"]
        assert (attrs["resource"], attrs["name"]) == ("nodes", "n1")
        return {"status": {"allowed": (obj["spec"]["user"], attrs["verb"], attrs["subresource"]) in self.allowed}}


async def test_agent_api_refuses_anonymous_and_asks_the_api_server_once_per_caller():
    client = _ReviewingClient({"good-token": "alice"}, {("alice", "get", "log"), ("system:kube-apiserver", "get",
                                                                                  "proxy")})
    auth = AgentAuth(client, "n1")  # type: ignore[arg-type]
    assert (await auth.check("GET", "/containerLogs/a/b/c", None, None)).status == 401
    assert (await auth.check("GET", "/logs/", None, "Bearer bad-token")).status == 401
    apiserver = {"subject": ((("commonName", "system:kube-apiserver"),),)}
    assert (await auth.check("GET", "/containerLogs/a/b/c", apiserver, None)).status == 0
    ok = await auth.check("GET", "/logs/syslog", None, "Bearer good-token")
    assert (ok.status, ok.caller.user if ok.caller else "") == (0, "alice")
    denied = await auth.check("POST", "/exec/a/b/c", None, "Bearer good-token")
    assert (denied.status, denied.message) == (
        403, "Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy])")
    before = list(client.calls)
    for _ in range(3):
        assert (await auth.check("GET", "/logs/x", None, "Bearer good-token")).status == 0
        assert (await auth.check("GET", "/containerLogs/a/b/c", apiserver, None)).status == 0
    assert client.calls == before  # cached: no review repeated


def test_agent_csr_object_asks_the_kubelet_serving_signer():
    key = ec.generate_private_key(ec.SECP256R1())
    obj = csr_object("n1", signing_request(key, "n1", wanted_names("n1", ["10.0.0.4"])))
    assert obj["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
    request = x509.load_pem_x509_csr(base64.b64decode(obj["spec"]["request"]))
    assert request.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"


async def test_a_host_name_is_dialled_at_the_address_that_was_checked():
    """No second lookup between the check and the dial (DNS rebinding)."""
    from aiohttp.test_utils import make_mocked_request

    from kybernetes.api.kinds.proxying import ProxyLocation
    from kybernetes.apiserver.proxy import ProxyRelay

    seen: dict[str, Any] = {}

    class _Session:
        async def request(self, method: str, url: Any, headers: Any = None, **kw: Any) -> Any:
            seen.update(url=str(url), headers=dict(headers or []), options=kw)
            raise aiohttp.ClientConnectionError("stop here")

    async def resolve(host: str) -> list[str]:
        return ["10.99.0.1"] if host == "backend.test" else []

    dialer = AgentDialer(None, resolve, local=lambda _a: False)
    assert await dialer.check("backend.test", 8080, None) == ["10.99.0.1"]
    relay = ProxyRelay(None, lambda: _Session(), dialer)  # type: ignore[arg-type]
    location = ProxyLocation("https", "backend.test", 8080, address="10.99.0.1")
    with pytest.raises(ApiError) as e:
        await relay.relay(make_mocked_request("GET", "/x?q=1"), location, "/x", "")
    assert e.value.code == 503
    assert seen["url"] == "https://10.99.0.1:8080/x?q=1"
    assert seen["headers"]["Host"] == "backend.test:8080"
    assert seen["options"]["server_hostname"] == "backend.test"


class _CsrApi:
    """The CSR API and the controller manager's signer, in memory."""

    def __init__(self, cluster: pki.Pki, approver: bool = True) -> None:
        self.ca_cert, self.ca_key = pki._load_ca(cluster)
        self.approver, self.csrs, self.created = approver, {}, 0

    async def create(self, res: Any, namespace: Any, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.created += 1
        name = f"csr-{self.created}"
        self.csrs[name] = {**obj, "metadata": {**obj["metadata"], "name": name}, "status": {}}
        return self.csrs[name]

    async def update(self, res: Any, namespace: Any, name: str, obj: dict[str, Any], subresource: str = "",
                     **_: Any) -> dict[str, Any]:
        assert subresource == "approval"
        if not self.approver:
            from kybernetes.client import ApiError as ClientApiError
            raise ClientApiError(403, "Forbidden", "no")
        self.csrs[name]["status"] = obj["status"]
        return self.csrs[name]

    async def get(self, res: Any, namespace: Any, name: str, **_: Any) -> dict[str, Any]:
        csr = self.csrs[name]
        if decide(csr) == Sign():
            cert = issue(csr, self.ca_cert, self.ca_key, dt.datetime.now(dt.UTC))
            csr["status"]["certificate"] = base64.b64encode(cert).decode()
        return csr


async def test_the_agent_requests_approves_and_reuses_its_serving_certificate(cluster, tmp_path):
    from kybernetes.agent.servingcert import ServingCertError, ensure_serving_cert

    api = _CsrApi(cluster)
    ca_pem = pki.read_ca_pem(cluster)
    cert_path, key_path = await ensure_serving_cert(api, "n1", ["10.0.0.4"], str(tmp_path), ca_pem)  # type: ignore[arg-type]
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())  # noqa: SIM115
    assert node_identity_problem(cert, "n1") is None
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert await ensure_serving_cert(api, "n1", ["10.0.0.4"], str(tmp_path), ca_pem) == (cert_path, key_path)  # type: ignore[arg-type]
    assert api.created == 1  # reused
    await ensure_serving_cert(api, "n1", ["10.0.0.5"], str(tmp_path), ca_pem)  # type: ignore[arg-type]
    assert api.created == 2  # a new address needs a new certificate
    # Without the right to approve, the agent waits for an approver (here: none comes).
    with pytest.raises(ServingCertError, match="was not signed within"):
        await ensure_serving_cert(_CsrApi(cluster, approver=False), "n2", [], str(tmp_path / "n2"), ca_pem,  # type: ignore[arg-type]
                                  timeout=0.5)
