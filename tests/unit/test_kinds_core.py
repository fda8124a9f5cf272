"""Strategies of core kinds without a server: Namespaces (lifecycle and finalize),
Secrets and ConfigMaps, Services (allocation seam), Nodes, Events."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime

from kybernetes.api.kinds import new_strategies
from kybernetes.api.kinds.base import Allocation
from kybernetes.api.kinds.service import SERVICE
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with

REG = Registry()
NAMESPACES = REG.get("", "v1", "namespaces")
SECRETS = REG.get("", "v1", "secrets")
CONFIGMAPS = REG.get("", "v1", "configmaps")
SERVICES = REG.get("", "v1", "services")
NODES = REG.get("", "v1", "nodes")
EVENTS = REG.get("events.k8s.io", "v1", "events")
CORE_EVENTS = REG.get("", "v1", "events")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def messages(errs) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def test_a_new_namespace_is_active_with_the_kubernetes_finalizer():
    s = new_strategies().for_info(NAMESPACES)
    ns = {"metadata": {"name": "team"}, "status": {"phase": "Terminating"}}
    s.prepare_for_create(NAMESPACES, ns)
    s.default(NAMESPACES, ns)
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}


def test_a_deleted_namespace_terminates_and_stays_until_finalized():
    s = new_strategies().for_info(NAMESPACES)
    ns = {"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    # Even without metadata finalizers, a delete only marks it: its controller empties it first.
    assert s.deletes_through_finalizers(ns)
    s.prepare_for_delete(ns)
    assert ns["status"]["phase"] == "Terminating"
    assert s.holds_removal(ns)
    ns["spec"]["finalizers"] = []
    assert not s.holds_removal(ns)


def test_namespaces_finalize_changes_only_spec_finalizers():
    s = new_strategies().for_info(NAMESPACES)
    old = {"metadata": {"name": "team", "labels": {"a": "b"}}, "spec": {"finalizers": ["kubernetes"]},
           "status": {"phase": "Terminating"}}
    request = {"metadata": {"name": "team", "labels": {"x": "y"}}, "spec": {"finalizers": []},
               "status": {"phase": "Active"}}
    policy = s.write_policy(NAMESPACES, "finalize")
    assert policy is not None
    stored = policy.merge(old, request, managed_done=False)
    assert stored == {"metadata": {"name": "team", "labels": {"a": "b"}}, "spec": {"finalizers": []},
                      "status": {"phase": "Terminating"}}
    assert old["spec"]["finalizers"] == ["kubernetes"]
    # Other kinds have no finalize subresource.
    assert new_strategies().for_info(SECRETS).write_policy(SECRETS, "finalize") is None


def test_secret_string_data_is_folded_into_data():
    s = new_strategies().for_info(SECRETS)
    secret = {"metadata": {"name": "s"}, "data": {"a": base64.b64encode(b"1").decode()},
              "stringData": {"b": "two"}}
    s.default(SECRETS, secret)
    s.prepare_write(SECRETS, secret, None)
    assert "stringData" not in secret
    assert secret["data"] == {"a": "MQ==", "b": base64.b64encode(b"two").decode()}
    assert secret["type"] == "Opaque"


def test_an_immutable_configmap_refuses_data_changes():
    s = new_strategies().for_info(CONFIGMAPS)
    old = {"metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["k"] = "w"
    errs = validate_with(s, CONFIGMAPS, new, old)
    assert messages(errs) == ["data: Forbidden: field is immutable when `immutable` is set"]


def test_configmap_keys_are_checked():
    s = new_strategies().for_info(CONFIGMAPS)
    errs = s.validate(CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"bad key": "v"}})
    assert messages(errs)[0].startswith('data[bad key]: Invalid value: "bad key": a valid config key must consist')


class _Pool:
    async def reserve(self, old, new, dry_run):  # pragma: no cover - not called here
        raise AssertionError

    async def release(self, obj):  # pragma: no cover - not called here
        raise AssertionError


def test_service_allocation_is_attached_once_and_prepares_every_write():
    kinds = new_strategies()
    seen = []
    pool = _Pool()
    kinds.attach_allocation(SERVICE, Allocation(pool, prepare=lambda new, old: seen.append((new, old))))
    s = kinds.for_info(SERVICES)
    assert s.allocator is pool
    svc = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {}}}
    s.prepare_for_create(SERVICES, svc)
    assert svc["status"] == {"loadBalancer": {}}  # a Service's status survives its create
    s.prepare_write(SERVICES, svc, None)
    assert seen == [(svc, None)]
    try:
        kinds.attach_allocation(SERVICE, Allocation(pool))
    except ValueError:
        pass
    else:
        raise AssertionError("a second allocation for the same kind must be refused")
    # Other servers' strategies are untouched.
    assert new_strategies().for_info(SERVICES).allocator is None


def test_service_of_an_unknown_type_is_rejected():
    s = new_strategies().for_info(SERVICES)
    svc = {"metadata": {"name": "web"}, "spec": {"type": "Fancy", "ports": [{"port": 80}]}}
    s.default(SERVICES, svc)
    assert 'spec.type: Unsupported value: "Fancy": supported values: "ClusterIP", "ExternalName", ' \
           '"LoadBalancer", "NodePort"' in messages(s.validate(SERVICES, svc))


def test_node_status_is_kept_on_create_and_shown_in_the_table():
    s = new_strategies().for_info(NODES)
    node = {"metadata": {"name": "n1", "creationTimestamp": "2025-12-31T00:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0"}}}
    s.prepare_for_create(NODES, node)
    assert node["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    cells = s.row_cells(NODES, node, NOW)
    assert cells[:5] == ["n1", "Ready", "control-plane", "24h", "v1.37.0"]


def test_both_event_apis_share_one_strategy_and_table():
    kinds = new_strategies()
    assert kinds.for_info(EVENTS) is kinds.for_info(CORE_EVENTS)
    assert [c["name"] for c in kinds.for_info(EVENTS).columns(EVENTS)][:3] == ["Last Seen", "Type", "Reason"]
