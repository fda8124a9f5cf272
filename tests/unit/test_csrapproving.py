"""The CSR approver (node client and serving requests) and the node client signer's
validation, without a server."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes.client.resources import NODES
from kybernetes.controllers import csrapproving as ap
from kybernetes.controllers.csrsigning import CSRS, Fail, Sign
from kybernetes.controllers.csrsigning import decide as sign_decision
from kybernetes.testing.fakes import FakeClient, FakeInformers

CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING = "kubernetes.io/kubelet-serving"
BOOTSTRAPPER = ("system:bootstrap:abcdef", ["system:bootstrappers", "system:authenticated"])
NODE = ("system:node:n1", ["system:nodes", "system:authenticated"])


def _csr(cn: str = "system:node:n1", orgs: tuple[str, ...] = ("system:nodes",), signer: str = CLIENT,
         usages: tuple[str, ...] = ("digital signature", "client auth"), requester: tuple[str, list[str]] = BOOTSTRAPPER,
         sans: list[x509.GeneralName] | None = None, conditions: list[dict] | None = None) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "csr-1"},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer, "usages": list(usages),
                     "username": requester[0], "groups": requester[1]},
            "status": {"conditions": conditions or []}}


def _node(name: str = "n1", ips: tuple[str, ...] = ("10.0.0.5",)) -> dict:
    return {"metadata": {"name": name},
            "status": {"addresses": [*({"type": "InternalIP", "address": ip} for ip in ips),
                                     {"type": "Hostname", "address": "host-1"}]}}


# -- node client requests -------------------------------------------------------------------


def test_a_bootstrapper_asking_for_a_node_certificate_is_checked_for_nodeclient() -> None:
    assert ap.decide(_csr()) == ap.AskAccess((ap.NODE_CLIENT,))


def test_a_node_renewing_its_own_certificate_is_checked_for_selfnodeclient_first() -> None:
    assert ap.decide(_csr(requester=NODE)) == ap.AskAccess((ap.SELF_NODE_CLIENT, ap.NODE_CLIENT))


def test_a_node_asking_for_another_nodes_certificate_is_not_self() -> None:
    assert ap.decide(_csr(cn="system:node:n2", requester=NODE)) == ap.AskAccess((ap.NODE_CLIENT,))


@pytest.mark.parametrize("csr", [
    _csr(orgs=("system:masters",)),
    _csr(orgs=("system:nodes", "system:masters")),
    _csr(cn="alice"),
    _csr(usages=("digital signature", "client auth", "server auth")),
    _csr(sans=[x509.DNSName("n1")]),
    _csr(signer="kubernetes.io/kube-apiserver-client"),
    _csr(conditions=[{"type": "Denied", "status": "True"}]),
    _csr(conditions=[{"type": "Approved", "status": "True"}]),
])
def test_requests_that_are_no_valid_node_client_request_are_left_alone(csr: dict) -> None:
    assert ap.decide(csr) is None


def test_the_signer_issues_only_valid_node_client_requests() -> None:
    approved = [{"type": "Approved", "status": "True"}]
    assert sign_decision(_csr(conditions=approved)) == Sign()
    assert sign_decision(_csr(usages=("digital signature", "key encipherment", "client auth"),
                              conditions=approved)) == Sign()
    bad = sign_decision(_csr(orgs=("system:masters",), conditions=approved))
    assert bad == Fail("SignerValidationFailure", "subject organization is not system:nodes")
    bad = sign_decision(_csr(sans=[x509.DNSName("x")], conditions=approved))
    assert bad == Fail("SignerValidationFailure", "DNS subjectAltNames are not allowed")
    bad = sign_decision(_csr(usages=("client auth",), conditions=approved))
    assert isinstance(bad, Fail) and "usages did not match" in bad.message


def test_the_access_review_asks_for_the_requester() -> None:
    review = ap.access_review(_csr(), "nodeclient")
    assert review["spec"] == {"user": "system:bootstrap:abcdef", "groups": BOOTSTRAPPER[1],
                              "resourceAttributes": {"group": "certificates.k8s.io",
                                                     "resource": "certificatesigningrequests", "verb": "create",
                                                     "subresource": "nodeclient"}}


def _controller(*csrs: dict, allow: set[str], nodes: tuple[dict, ...] = ()) -> tuple[FakeClient, ap.CSRApprovingController]:
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(CSRS, *csrs)
    client.add(NODES, *nodes)

    def review(call: object) -> dict:
        spec = call.body["spec"]  # type: ignore[attr-defined]
        sub = spec["resourceAttributes"]["subresource"]
        return {"status": {"allowed": f"{spec['user']}/{sub}" in allow}}

    client.react("create", "subjectaccessreviews", review)
    return client, ap.CSRApprovingController(client, informers)


def _approval(client: FakeClient) -> dict | None:
    writes = [c for c in client.calls_of("update", "certificatesigningrequests") if c.subresource == "approval"]
    if not writes:
        return None
    return writes[-1].body["status"]["conditions"][-1]


async def test_an_allowed_bootstrapper_request_is_approved() -> None:
    client, ctl = _controller(_csr(), allow={"system:bootstrap:abcdef/nodeclient"})
    await ctl.sync("csr-1")
    cond = _approval(client)
    assert cond is not None and cond["type"] == "Approved" and cond["reason"] == "AutoApproved"
    assert cond["message"] == ap.NODE_CLIENT[1]


async def test_a_request_the_authorizer_refuses_is_left_pending() -> None:
    client, ctl = _controller(_csr(), allow=set())
    await ctl.sync("csr-1")
    assert _approval(client) is None
    assert len(client.calls_of("create", "subjectaccessreviews")) == 1


async def test_a_node_renewal_is_approved_as_selfnodeclient() -> None:
    client, ctl = _controller(_csr(requester=NODE), allow={"system:node:n1/selfnodeclient"})
    await ctl.sync("csr-1")
    cond = _approval(client)
    assert cond is not None and cond["message"] == ap.SELF_NODE_CLIENT[1]


# -- node serving requests ------------------------------------------------------------------


def _serving(names: list[x509.GeneralName], requester: tuple[str, list[str]] = NODE, cn: str = "system:node:n1") -> dict:
    return _csr(cn=cn, signer=SERVING, usages=("digital signature", "server auth"), requester=requester, sans=names)


GOOD_NAMES = [x509.DNSName("n1"), x509.DNSName("host-1"), x509.IPAddress(ipaddress.ip_address("10.0.0.5"))]


def test_a_nodes_serving_request_for_its_own_names_is_approved() -> None:
    assert ap.decide(_serving(GOOD_NAMES), lambda name: _node() if name == "n1" else None) == \
        ap.Approve(ap.SERVING_MESSAGE)


def test_a_serving_request_waits_for_its_node() -> None:
    assert ap.decide(_serving(GOOD_NAMES), lambda name: None) == ap.WaitForNode("n1")
    assert ap.decide(_serving(GOOD_NAMES), lambda name: _node(ips=("10.0.0.6",))) == ap.WaitForNode("n1")


@pytest.mark.parametrize("csr", [
    _serving(GOOD_NAMES, requester=BOOTSTRAPPER),
    _serving(GOOD_NAMES, requester=("system:node:n1", ["system:authenticated"])),
    _serving(GOOD_NAMES, cn="system:node:n2"),
    _serving(GOOD_NAMES, requester=("system:node:n2", ["system:nodes"]), cn="system:node:n1"),
])
def test_serving_requests_not_from_the_node_itself_are_left_to_an_administrator(csr: dict) -> None:
    assert ap.decide(csr, lambda name: _node(name)) is None


def test_a_serving_request_for_a_foreign_name_is_not_approved() -> None:
    csr = _serving([x509.DNSName("n1"), x509.DNSName("kubernetes.default.svc")])
    assert ap.decide(csr, lambda name: _node()) == ap.WaitForNode("n1")


async def test_the_controller_approves_a_serving_request_once_the_node_lists_its_address() -> None:
    client, ctl = _controller(_serving(GOOD_NAMES), allow=set(), nodes=(_node(ips=("10.0.0.9",)),))
    await ctl.sync("csr-1")
    assert _approval(client) is None
    client.add(NODES, _node())
    await ctl.sync("csr-1")
    cond = _approval(client)
    assert cond is not None and cond["message"] == ap.SERVING_MESSAGE
    assert not client.calls_of("create", "subjectaccessreviews")
