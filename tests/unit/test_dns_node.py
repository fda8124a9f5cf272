"""A node's DNS endpoint: what it publishes for the kube-dns Service."""

from __future__ import annotations

from kybernetes.api.labels import NODE_DNS_MANAGER
from kybernetes.dns.node import endpoint_slice
from kybernetes.proxy import model


def test_the_slice_names_this_node_as_a_kube_dns_endpoint():
    body = endpoint_slice("n1", "192.0.2.7", 10053, node_uid="u-1")
    meta = body["metadata"]
    assert (meta["namespace"], meta["name"]) == ("kube-system", "kube-dns-n1")
    assert meta["labels"] == {"kubernetes.io/service-name": "kube-dns",
                              "endpointslice.kubernetes.io/managed-by": NODE_DNS_MANAGER}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u-1"}]
    assert "ownerReferences" not in endpoint_slice("n1", "192.0.2.7", 53)["metadata"]


def test_the_proxy_sends_the_dns_service_to_it():
    svc = {"metadata": {"namespace": "kube-system", "name": "kube-dns"},
           "spec": {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                              {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}
    tcp, udp = sorted(model.service_ports([svc], [endpoint_slice("n1", "192.0.2.7", 10053)]), key=lambda p: p.protocol)
    assert (tcp.protocol, udp.protocol) == ("tcp", "udp")
    assert [(e.ip, e.port, e.node) for e in udp.endpoints] == [("192.0.2.7", 10053, "n1")]
    assert [(e.ip, e.port) for e in tcp.endpoints] == [("192.0.2.7", 10053)]


def _node(name: str, ready: str) -> dict:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_endpoint_conditions_follow_the_node():
    from kybernetes.controllers.nodedns import endpoints_patch

    body = endpoint_slice("n1", "192.0.2.7", 53)
    assert endpoints_patch(body, {"n1": _node("n1", "True")}) is None
    patch = endpoints_patch(body, {"n1": _node("n1", "Unknown")})
    assert patch is not None
    assert patch["endpoints"][0]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert patch["endpoints"][0]["addresses"] == ["192.0.2.7"]
    assert endpoints_patch(body, {}) is None  # a node not known yet: left alone


def test_the_agent_republishes_only_what_it_owns():
    from kybernetes.dns.node import _same_endpoint

    mine = endpoint_slice("n1", "192.0.2.7", 53, "u1")
    stored = endpoint_slice("n1", "192.0.2.7", 53, "u1")
    stored["endpoints"][0]["conditions"] = {"ready": False, "serving": False, "terminating": False}
    assert _same_endpoint(stored, mine)  # the conditions are the controller's
    assert not _same_endpoint(stored, endpoint_slice("n1", "192.0.2.8", 53, "u1"))
    assert not _same_endpoint(stored, endpoint_slice("n1", "192.0.2.7", 10053, "u1"))
