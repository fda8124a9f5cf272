"""EndpointSlice mirroring against a real `kyb server`, driven by real kubectl: a user's
Endpoints for a Service without a selector shows up as an EndpointSlice."""

from __future__ import annotations

import json
import time

from kybernetes.testing.cluster import wait_for

NS = "mirroring"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


def _slices(kubectl, service: str) -> list[dict]:
    out = kubectl.ok("get", "endpointslices", "-n", NS, "-l", f"kubernetes.io/service-name={service}", "-o", "json")
    return json.loads(out)["items"]


def _mirrored(kubectl, service: str) -> list[dict]:
    return [s for s in _slices(kubectl, service)
            if s["metadata"]["labels"].get(MANAGED_BY) == "endpointslicemirroring-controller.k8s.io"]


def _addresses(slice_: dict) -> list[str]:
    return sorted(a for e in slice_.get("endpoints") or [] for a in e["addresses"])


def _apply(kubectl, obj: dict) -> None:
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(obj))


def _endpoints(name: str, ips: list[str], port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": NS},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "ports": [{"name": "pg", "port": port, "protocol": "TCP"}]}]}


def test_user_endpoints_of_a_selectorless_service_are_mirrored(kubectl):
    kubectl("create", "namespace", NS)
    _apply(kubectl, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": NS},
                     "spec": {"ports": [{"name": "pg", "port": 5432}]}})
    _apply(kubectl, _endpoints("ext", ["10.9.0.1", "10.9.0.2"], 5432))

    (sl,) = wait_for(lambda: _mirrored(kubectl, "ext"), what="a mirrored slice")
    assert sl["addressType"] == "IPv4"
    assert _addresses(sl) == ["10.9.0.1", "10.9.0.2"]
    assert [(p["name"], p["port"], p["protocol"]) for p in sl["ports"]] == [("pg", 5432, "TCP")]
    assert sl["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"

    _apply(kubectl, _endpoints("ext", ["10.9.0.3"], 6432))
    (sl,) = wait_for(lambda: [s for s in _mirrored(kubectl, "ext")
                              if _addresses(s) == ["10.9.0.3"] and s["ports"][0]["port"] == 6432] or None,
                     what="the slice to follow the Endpoints")

    kubectl.ok("delete", "service", "ext", "-n", NS)
    wait_for(lambda: _mirrored(kubectl, "ext") == [], what="the mirrored slice to go")


def test_a_selector_service_gets_no_mirrored_slice(kubectl):
    kubectl("create", "namespace", NS)
    _apply(kubectl, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sel", "namespace": NS},
                     "spec": {"selector": {"app": "nothing-matches"}, "ports": [{"port": 80}]}})
    # The endpoints controller's own Endpoints carry skip-mirror; the EndpointSlice
    # controller's placeholder slice appears, the mirroring controller's never does.
    wait_for(lambda: _slices(kubectl, "sel"), what="the endpointslice controller's slice")
    ep = wait_for(lambda: kubectl("get", "endpoints", "sel", "-n", NS, "-o", "json").stdout, what="Endpoints")
    assert json.loads(ep)["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    time.sleep(1.0)  # give a wrong mirror the chance to appear
    assert _mirrored(kubectl, "sel") == []
    kubectl.ok("delete", "service", "sel", "-n", NS)
