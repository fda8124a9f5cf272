"""Unit tests for kybernetes.api.managedfields (server-side apply and field ownership)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from kybernetes.api import managedfields as mf
from kybernetes.api import schemas
from kybernetes.api.errors import ApiError

SAMPLES = Path("/work/shared/compat/samples")


def _schema(group: str, version: str, kind: str) -> dict:
    name = schemas.definition_name_for(group, version, kind)
    assert name is not None
    node = schemas.root(name)
    assert node is not None
    return node


CONFIGMAP = _schema("", "v1", "ConfigMap")
DEPLOYMENT = _schema("apps", "v1", "Deployment")
REPLICASET = _schema("apps", "v1", "ReplicaSet")


def cm(data: dict, **meta) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default", **meta}, "data": data}


def entry(obj: dict, manager: str, operation: str = "Apply") -> dict | None:
    for e in obj["metadata"].get("managedFields", []):
        if e["manager"] == manager and e["operation"] == operation:
            return e
    return None


def apply_cm(live, data, manager, force=False, now="2026-11-24T17:27:37Z", **meta):
    return mf.apply(live, cm(data, **meta), manager, force, CONFIGMAP, "v1", now)


WEB = {"apiVersion": "apps/v1", "kind": "Deployment",
       "metadata": {"labels": {"app": "web"}, "name": "web", "namespace": "default"},
       "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"image": "nginx:1.25", "name": "nginx",
                                                      "ports": [{"containerPort": 80}]}]}}}}


# -- ConfigMap apply -------------------------------------------------------------------------


def test_apply_create_matches_real_server_entry():
    obj = apply_cm(None, {"a": "1", "b": "2"}, "kubectl")
    # Captured from a real apiserver (ssa-create.txt).
    assert obj["metadata"]["managedFields"] == [
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2026-11-24T17:27:37Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}}]
    assert obj["data"] == {"a": "1", "b": "2"}
    assert obj["metadata"]["name"] == "cfg"


def test_conflicting_apply_is_rejected_with_kubernetes_message():
    live = apply_cm(None, {"k": "1"}, "mgr-a")
    with pytest.raises(ApiError) as err:
        apply_cm(live, {"k": "2"}, "mgr-b")
    e = err.value
    assert e.code == 409 and e.reason == "Conflict"
    assert e.message == 'Apply failed with 1 conflict: conflict with "mgr-a": .data.k'
    assert e.details == {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "mgr-a"',
                                     "field": ".data.k"}]}


def test_multiple_conflicts_are_listed_per_manager():
    live = apply_cm(None, {"a": "1", "b": "1"}, "mgr-a")
    with pytest.raises(ApiError) as err:
        apply_cm(live, {"a": "2", "b": "2"}, "mgr-b")
    assert err.value.message == 'Apply failed with 2 conflicts: conflicts with "mgr-a":\n- .data.a\n- .data.b'
    assert [c["field"] for c in err.value.details["causes"]] == [".data.a", ".data.b"]


def test_same_value_is_shared_without_conflict():
    live = apply_cm(None, {"k": "1", "x": "a"}, "mgr-a")
    obj = apply_cm(live, {"k": "1"}, "mgr-b")
    assert entry(obj, "mgr-a")["fieldsV1"] == {"f:data": {"f:k": {}, "f:x": {}}}
    assert entry(obj, "mgr-b")["fieldsV1"] == {"f:data": {"f:k": {}}}
    assert obj["data"] == {"k": "1", "x": "a"}


def test_force_takes_ownership_and_drops_emptied_entries():
    live = apply_cm(None, {"k": "1"}, "mgr-a")
    obj = apply_cm(live, {"k": "2"}, "mgr-b", force=True)
    assert obj["data"] == {"k": "2"}
    assert entry(obj, "mgr-a") is None
    assert entry(obj, "mgr-b")["fieldsV1"] == {"f:data": {"f:k": {}}}


def test_force_leaves_other_fields_with_previous_owner():
    live = apply_cm(None, {"k": "1", "x": "1"}, "mgr-a")
    obj = apply_cm(live, {"k": "2"}, "mgr-b", force=True)
    assert entry(obj, "mgr-a")["fieldsV1"] == {"f:data": {"f:x": {}}}


def test_reapply_without_a_field_removes_it():
    live = apply_cm(None, {"a": "1", "b": "2"}, "mgr-a", labels={"app": "x", "tier": "y"})
    obj = apply_cm(live, {"a": "1"}, "mgr-a", labels={"app": "x"})
    assert obj["data"] == {"a": "1"}
    assert obj["metadata"]["labels"] == {"app": "x"}
    assert entry(obj, "mgr-a")["fieldsV1"] == {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}


def test_reapply_dropping_all_entries_of_a_map_removes_the_map():
    live = apply_cm(None, {"a": "1"}, "mgr-a", labels={"app": "x"})
    obj = mf.apply(live, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}},
                   "mgr-a", False, CONFIGMAP, "v1", "t2")
    assert "labels" not in obj["metadata"]


def test_field_still_owned_by_someone_else_survives_removal():
    live = apply_cm(None, {"a": "1", "b": "2"}, "mgr-a")
    live = apply_cm(live, {"b": "2"}, "mgr-b")
    obj = apply_cm(live, {"a": "1"}, "mgr-a")
    assert obj["data"] == {"a": "1", "b": "2"}
    assert entry(obj, "mgr-b")["fieldsV1"] == {"f:data": {"f:b": {}}}


def test_noop_apply_returns_live_unchanged():
    live = apply_cm(None, {"a": "1"}, "mgr-a", now="t1")
    again = apply_cm(live, {"a": "1"}, "mgr-a", now="t2")
    assert again == live
    assert entry(again, "mgr-a")["time"] == "t1"


def test_apply_does_not_mutate_inputs():
    live = apply_cm(None, {"a": "1"}, "mgr-a")
    snapshot = copy.deepcopy(live)
    config = cm({"a": "2"})
    mf.apply(live, config, "mgr-a", False, CONFIGMAP, "v1", "t")
    assert live == snapshot
    assert config == cm({"a": "2"})


def test_apply_keeps_server_metadata_and_rejects_managed_fields_in_config():
    live = apply_cm(None, {"a": "1"}, "mgr-a")
    live["metadata"].update(uid="u1", resourceVersion="5", creationTimestamp="t0")
    obj = apply_cm(live, {"a": "2"}, "mgr-a", uid="other", resourceVersion="1")
    assert obj["metadata"]["uid"] == "u1" and obj["metadata"]["resourceVersion"] == "5"
    with pytest.raises(ApiError) as err:
        apply_cm(live, {"a": "1"}, "mgr-a", managedFields=[{"manager": "x"}])
    assert err.value.code == 400


def test_apply_requires_a_field_manager():
    with pytest.raises(ApiError) as err:
        apply_cm(None, {"a": "1"}, "")
    assert err.value.code == 422
    assert "fieldManager: Required value" in err.value.message


def test_first_apply_on_untracked_object_conflicts_with_before_first_apply():
    live = cm({"a": "1"})
    with pytest.raises(ApiError) as err:
        apply_cm(live, {"a": "2"}, "kubectl")
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "before-first-apply" using v1: '
                                 ".data.a")


def test_duplicate_keys_in_config_are_rejected():
    bad = copy.deepcopy(WEB)
    containers = bad["spec"]["template"]["spec"]["containers"]
    containers.append(dict(containers[0]))
    with pytest.raises(ApiError) as err:
        mf.apply(None, bad, "kubectl", False, DEPLOYMENT, "apps/v1", "t")
    assert err.value.code == 422
    assert 'duplicate entries for key [name="nginx"]' in err.value.message


# -- Deployment apply (list-maps) ------------------------------------------------------------


def test_deployment_apply_records_list_map_keys_like_kubernetes():
    obj = mf.apply(None, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t")
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}},
            },
        },
    }


def test_deployment_apply_merges_containers_by_name():
    live = mf.apply(None, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t1")
    spec = live["spec"]["template"]["spec"]
    # What defaulting adds after the first write.
    spec["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    spec["containers"][0]["ports"][0]["protocol"] = "TCP"
    spec["containers"].insert(0, {"name": "sidecar", "image": "busybox"})

    new = copy.deepcopy(WEB)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    obj = mf.apply(live, new, "kubectl", False, DEPLOYMENT, "apps/v1", "t2")
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"name": "sidecar", "image": "busybox"},
        {"image": "nginx:1.26", "name": "nginx", "imagePullPolicy": "IfNotPresent",
         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
    ]


def test_deployment_apply_conflicts_on_list_map_item_field():
    live = mf.apply(None, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t1")
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}
    with pytest.raises(ApiError) as err:
        mf.apply(live, other, "ops", False, DEPLOYMENT, "apps/v1", "t2")
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "kubectl": '
                                 '.spec.template.spec.containers[name="nginx"].image')


def test_removing_a_container_from_config_removes_it_from_object():
    two = copy.deepcopy(WEB)
    two["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    live = mf.apply(None, two, "kubectl", False, DEPLOYMENT, "apps/v1", "t1")
    obj = mf.apply(live, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t2")
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_main_resource_apply_ignores_status_and_status_apply_only_status():
    live = mf.apply(None, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t1")
    with_status = copy.deepcopy(WEB)
    with_status["status"] = {"replicas": 9}
    obj = mf.apply(live, with_status, "kubectl", False, DEPLOYMENT, "apps/v1", "t2")
    assert "status" not in obj

    status_cfg = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 7}, "status": {"replicas": 2}}
    obj = mf.apply(live, status_cfg, "ctrl", False, DEPLOYMENT, "apps/v1", "t3", subresource="status")
    assert obj["status"] == {"replicas": 2}
    assert obj["spec"]["replicas"] == 2
    e = entry(obj, "ctrl")
    assert e["subresource"] == "status" and e["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_kubectl_apply_refreshes_client_side_annotation():
    live = mf.apply(None, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t1")
    live["metadata"]["annotations"] = {mf.LAST_APPLIED_ANNOTATION: "{}"}
    new = copy.deepcopy(WEB)
    new["spec"]["replicas"] = 3
    obj = mf.apply(live, new, "kubectl", False, DEPLOYMENT, "apps/v1", "t2")
    text = obj["metadata"]["annotations"][mf.LAST_APPLIED_ANNOTATION]
    assert text == json.dumps(new, separators=(",", ":"), sort_keys=True) + "\n"


# -- non-apply writes --------------------------------------------------------------------------


def test_create_owns_every_field_in_go_zero_value_shape():
    rs = json.loads((SAMPLES / "replicasets-web.json").read_text())
    rs = rs["items"][0] if "items" in rs else rs
    expected = rs["metadata"]["managedFields"][1]
    assert expected["manager"] == "kube-controller-manager" and "subresource" not in expected
    obj = copy.deepcopy(rs)
    obj["metadata"].pop("managedFields")
    obj.pop("status", None)
    out = mf.record_update(None, obj, "kube-controller-manager", REPLICASET, "apps/v1", expected["time"])
    assert out == [expected]


def test_update_transfers_ownership_and_removed_fields_leave_everyone():
    created = cm({"a": "1", "b": "2"}, labels={"app": "x"})
    created["metadata"]["managedFields"] = mf.record_update(None, created, "kubectl-create", CONFIGMAP, "v1", "t1")
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {".": {}, "f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}

    updated = copy.deepcopy(created)
    updated["data"] = {"a": "changed", "c": "3"}
    fields = mf.record_update(created, updated, "editor", CONFIGMAP, "v1", "t2")
    by_manager = {e["manager"]: e for e in fields}
    assert by_manager["kubectl-create"]["fieldsV1"] == {"f:data": {}, "f:metadata": {
        "f:labels": {".": {}, "f:app": {}}}}
    assert by_manager["editor"] == {"manager": "editor", "operation": "Update", "apiVersion": "v1", "time": "t2",
                                    "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}, "f:c": {}}}}


def test_update_that_changes_nothing_keeps_entries():
    obj = cm({"a": "1"})
    obj["metadata"]["managedFields"] = mf.record_update(None, obj, "kubectl-create", CONFIGMAP, "v1", "t1")
    assert mf.record_update(obj, copy.deepcopy(obj), "other", CONFIGMAP, "v1", "t2") == obj["metadata"][
        "managedFields"]


def test_apply_conflicts_with_update_manager():
    obj = cm({"a": "1"})
    obj["metadata"]["managedFields"] = mf.record_update(None, obj, "kubectl-client-side-apply", CONFIGMAP,
                                                        "v1", "t1")
    with pytest.raises(ApiError) as err:
        apply_cm(obj, {"a": "2"}, "kubectl")
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                                 "using v1: .data.a")


def test_status_subresource_update_is_recorded_separately():
    old = mf.apply(None, WEB, "kubectl", False, DEPLOYMENT, "apps/v1", "t1")
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    fields = mf.record_update(old, new, "kube-controller-manager", DEPLOYMENT, "apps/v1", "t2", "status")
    e = next(x for x in fields if x["manager"] == "kube-controller-manager")
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:conditions": {".": {}, 'k:{"type":"Available"}': {
        ".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}}
    # The same write through the main resource does not own status.
    assert not [x for x in mf.record_update(old, new, "m", DEPLOYMENT, "apps/v1", "t2") if x["manager"] == "m"]


def test_client_sent_managed_fields_are_used_and_reset_works():
    obj = cm({"a": "1"})
    obj["metadata"]["managedFields"] = mf.record_update(None, obj, "kubectl-client-side-apply", CONFIGMAP,
                                                        "v1", "t1")
    rewritten = copy.deepcopy(obj)
    rewritten["metadata"]["managedFields"] = [
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {"f:a": {}}}}]
    assert mf.record_update(obj, rewritten, "kubectl", CONFIGMAP, "v1", "t2") == rewritten["metadata"][
        "managedFields"]
    reset = copy.deepcopy(obj)
    reset["metadata"]["managedFields"] = [{}]
    assert mf.record_update(obj, reset, "kubectl", CONFIGMAP, "v1", "t2") == []


def test_update_entries_are_capped():
    obj = cm({})
    fields: list = []
    for i in range(12):
        new = copy.deepcopy(obj)
        new["data"][f"k{i}"] = "v"
        new["metadata"]["managedFields"] = fields
        fields = mf.record_update(obj, new, f"m{i}", CONFIGMAP, "v1", f"2026-01-01T00:00:{i:02d}Z")
        obj = new
        obj["metadata"]["managedFields"] = fields
    names = [e["manager"] for e in fields]
    assert len(names) == 10
    assert "ancient-changes" in names and "m0" not in names and "m11" in names
    ancient = next(e for e in fields if e["manager"] == "ancient-changes")
    assert ancient["fieldsV1"] == {"f:data": {"f:k0": {}, "f:k1": {}, "f:k2": {}}}


# -- FieldsV1 encoding --------------------------------------------------------------------------


def test_fieldsv1_round_trip_on_real_entries():
    dep = json.loads((SAMPLES / "deployment-web.json").read_text())
    for e in dep["metadata"]["managedFields"]:
        decoded = mf.from_fieldsv1(e["fieldsV1"])
        assert decoded
        assert mf.to_fieldsv1(decoded) == e["fieldsV1"]
        assert json.dumps(mf.to_fieldsv1(decoded)) == json.dumps(e["fieldsV1"])


def test_fieldsv1_members_and_dot_entries():
    fields = {("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app"),
              ("f:metadata", "f:finalizers", 'v:"a.io/x"'), ("f:spec", "f:x")}
    assert mf.to_fieldsv1(fields) == {
        "f:metadata": {"f:finalizers": {'v:"a.io/x"': {}}, "f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:x": {}}}
    assert mf.from_fieldsv1(mf.to_fieldsv1(fields)) == fields


def test_fieldset_of_uses_set_and_atomic_lists():
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "finalizers": ["a.io/x"], "labels": {}},
           "spec": {"containers": [{"name": "c", "args": ["x", "y"]}]}}
    fields = mf.fieldset_of(obj, _schema("", "v1", "Pod"))
    assert fields == {
        ("f:metadata", "f:finalizers", 'v:"a.io/x"'),
        ("f:metadata", "f:labels"),
        ("f:spec", "f:containers", 'k:{"name":"c"}'),
        ("f:spec", "f:containers", 'k:{"name":"c"}', "f:name"),
        ("f:spec", "f:containers", 'k:{"name":"c"}', "f:args"),
    }


def test_fieldset_without_schema_treats_lists_as_atomic():
    fields = mf.fieldset_of({"spec": {"items": [{"a": 1}], "m": {"k": "v"}}}, None)
    assert ("f:spec", "f:items") in fields
    assert ("f:spec", "f:m", "f:k") in fields
    assert not any(len(p) > 2 and p[1] == "f:items" for p in fields)


@pytest.mark.parametrize("bad", [
    {"x:oops": {}},
    {"k:[1]": {}},
    {"f:a": "not-an-object"},
    {".": {}},
])
def test_from_fieldsv1_rejects_malformed(bad):
    with pytest.raises(ValueError):
        mf.from_fieldsv1(bad)


def test_validate_managed_fields():
    good = [{"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {}}}]
    mf.validate_managed_fields(good)
    with pytest.raises(ApiError) as err:
        mf.validate_managed_fields([dict(good[0], operation="Patch")])
    assert err.value.code == 400 and "must be `Apply` or `Update`" in err.value.message
    with pytest.raises(ApiError):
        mf.validate_managed_fields([dict(good[0], fieldsType="FieldsV2")])
    with pytest.raises(ApiError):
        mf.validate_managed_fields([dict(good[0], fieldsV1={"bogus": {}})])
    with pytest.raises(ApiError):
        mf.validate_managed_fields([dict(good[0], manager="x" * 129)])


def test_path_string_formats_like_structured_merge_diff():
    assert mf.path_string(("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:name")) == \
        '.spec.ports[port=80,protocol="TCP"].name'
    assert mf.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_kubectl_may_take_over_fields_it_applied_client_side():
    csa = copy.deepcopy(WEB)
    csa["metadata"]["annotations"] = {mf.LAST_APPLIED_ANNOTATION: json.dumps(WEB)}
    csa["metadata"]["managedFields"] = mf.record_update(None, csa, "kubectl-client-side-apply", DEPLOYMENT,
                                                        "apps/v1", "t1")
    changed = copy.deepcopy(WEB)
    changed["spec"]["replicas"] = 5
    obj = mf.apply(csa, changed, "kubectl", False, DEPLOYMENT, "apps/v1", "t2")
    assert obj["spec"]["replicas"] == 5
    assert ("f:spec", "f:replicas") not in mf.from_fieldsv1(entry(obj, "kubectl-client-side-apply", "Update")[
        "fieldsV1"])
    # Another manager name gets the conflict, and so does kubectl once live drifted from the annotation.
    with pytest.raises(ApiError):
        mf.apply(csa, changed, "other", False, DEPLOYMENT, "apps/v1", "t2")
    drifted = copy.deepcopy(csa)
    drifted["spec"]["replicas"] = 4
    with pytest.raises(ApiError):
        mf.apply(drifted, changed, "kubectl", False, DEPLOYMENT, "apps/v1", "t2")


def test_removed_fields_leave_other_owners_too():
    live = apply_cm(None, {"a": "1"}, "mgr-a", labels={"app": "x"})
    # An Update manager also claims the label map itself ("." entry) but not the key.
    live["metadata"]["managedFields"].append(
        {"manager": "ed", "operation": "Update", "apiVersion": "v1", "time": "t0", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:data": {"f:z": {}}}})
    live["data"]["z"] = "1"
    obj = mf.apply(live, cm({"a": "1"}), "mgr-a", False, CONFIGMAP, "v1", "t2")
    # Shared label survives because "ed" still owns it.
    assert obj["metadata"]["labels"] == {"app": "x"}
    live2 = apply_cm(None, {"a": "1", "b": "2"}, "mgr-a")
    live2["metadata"]["managedFields"].append(
        {"manager": "ed", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {".": {}}}})
    obj2 = apply_cm(live2, {}, "mgr-a")
    assert obj2["data"] == {}
    # Applying an empty map owns the map itself, alongside "ed".
    assert entry(obj2, "mgr-a")["fieldsV1"] == {"f:data": {}}
    assert entry(obj2, "ed", "Update")["fieldsV1"] == {"f:data": {}}
