"""The lookup of strategies, and the CRD and custom-resource strategies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kybernetes.api.kinds import DEFAULT, KindRef, KindStrategy, Strategies, new_strategies
from kybernetes.api.kinds.crd import CLEANUP_FINALIZER, CRD
from kybernetes.api.kinds.custom import CustomResourceStrategy
from kybernetes.api.registry import Registry, ResourceInfo

REG = Registry()
CRDS = REG.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NOW = datetime(2026, 1, 1, tzinfo=UTC)

WIDGETS = ResourceInfo(
    group="example.com", version="v1", kind="Widget", plural="widgets", singular="widget", namespaced=True,
    subresources=("status",),
    crd_schema={"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 3, "minimum": 1}}}}},
    printer_columns=[{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
    extra={"crd": "widgets.example.com"})


def test_every_built_in_kind_with_rules_has_exactly_one_strategy():
    kinds = new_strategies()
    for info in REG.all():
        strategy = kinds.for_info(info)
        assert isinstance(strategy, KindStrategy)
        assert strategy is kinds.for_info(info)  # one instance per kind
    assert type(kinds.for_info(REG.get("", "v1", "pods"))).__name__ == "PodStrategy"
    assert type(kinds.for_info(REG.get("apps", "v1", "deployments"))).__name__ == "DeploymentStrategy"


def test_a_kind_without_rules_gets_the_generic_strategy():
    kinds = new_strategies()
    unknown = ResourceInfo(group="x.io", version="v1", kind="Thing", plural="things", singular="thing",
                           namespaced=True)
    assert kinds.for_info(unknown) is kinds.generic
    assert [c["name"] for c in kinds.generic.columns(unknown)] == ["Name", "Age"]
    assert kinds.generic.validate(unknown, {"metadata": {"name": "t"}}) == []


def test_registering_a_kind_twice_is_refused():
    class A(KindStrategy):
        refs = (KindRef("", "Pod"),)

    with pytest.raises(ValueError, match="two strategies"):
        Strategies([A(), A()])


def test_crd_create_gets_the_cleanup_finalizer_and_established_status():
    s = DEFAULT.for_info(CRDS)
    crd = {"metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    s.prepare_for_create(CRDS, crd)
    s.default(CRDS, crd)
    s.prepare_write(CRDS, crd, None)
    assert crd["metadata"]["finalizers"] == [CLEANUP_FINALIZER]
    assert crd["status"]["acceptedNames"]["singular"] == "widget"
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
    assert {c["type"] for c in crd["status"]["conditions"]} == {"NamesAccepted", "Established"}
    assert crd["status"]["storedVersions"] == ["v1"]
    assert s.validate(CRDS, crd) == []


def test_deletion_listeners_hear_of_marked_crds():
    kinds = new_strategies()
    heard = []
    kinds.add_deletion_listener(CRD, heard.append)
    crd = {"metadata": {"name": "widgets.example.com", "deletionTimestamp": "t"}}
    kinds.for_info(CRDS).marked_deleted(crd)
    assert heard == [crd]


def test_custom_resources_get_schema_defaults_validation_and_printer_columns():
    kinds = new_strategies()
    s = kinds.for_info(WIDGETS)
    assert isinstance(s, CustomResourceStrategy)
    w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {},
         "status": {"ready": True}}
    s.prepare_for_create(WIDGETS, w)
    assert "status" not in w  # status is the controller's, through /status
    s.default(WIDGETS, w)
    assert w["spec"] == {"size": 3}
    assert s.validate(WIDGETS, w) == []
    w["spec"]["size"] = 0
    (err,) = s.validate(WIDGETS, w)
    assert err.field == "spec.size"
    assert [c["name"] for c in s.columns(WIDGETS)] == ["Name", "Size"]
    assert s.row_cells(WIDGETS, w, NOW) == ["w", 0]
