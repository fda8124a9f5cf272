"""Unit tests for kybernetes.api.patch (merge, json and strategic merge patches)."""

from __future__ import annotations

import copy
import json

import pytest

from kybernetes.api import schemas
from kybernetes.api.errors import ApiError
from kybernetes.api.patch import (
    json_merge_patch,
    json_patch,
    patch_for_content_type,
    strategic_merge_patch,
)


def _schema(group: str, version: str, kind: str) -> dict:
    name = schemas.definition_name_for(group, version, kind)
    assert name is not None
    node = schemas.root(name)
    assert node is not None
    return node


DEPLOYMENT = _schema("apps", "v1", "Deployment")
POD = _schema("", "v1", "Pod")
SERVICE = _schema("", "v1", "Service")
CONFIGMAP = _schema("", "v1", "ConfigMap")


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "finalizers": ["x/a", "x/b"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "a:1", "args": ["x", "y"],
                         "env": [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"}],
                         "ports": [{"containerPort": 80}, {"containerPort": 81}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "b", "image": "b:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "k1", "operator": "Exists"}],
                },
            },
        },
    }


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def assert_no_directives(value: object) -> None:
    text = json.dumps(value)
    for marker in ("$patch", "$retainKeys", "$setElementOrder", "$deleteFromPrimitiveList"):
        assert marker not in text, f"{marker} left in {text}"


# -- Content-Type ----------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json-patch+json", "json"),
    ("application/merge-patch+json", "merge"),
    ("application/strategic-merge-patch+json", "strategic"),
    ("application/apply-patch+yaml", "apply"),
    ("application/merge-patch+json; charset=utf-8", "merge"),
    ("Application/Strategic-Merge-Patch+JSON", "strategic"),
])
def test_patch_for_content_type(content_type: str, expected: str) -> None:
    assert patch_for_content_type(content_type) == expected


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml", "", "text/plain"])
def test_patch_for_content_type_rejects_others_with_415(content_type: str) -> None:
    with pytest.raises(ApiError) as exc:
        patch_for_content_type(content_type)
    assert exc.value.code == 415
    assert exc.value.message == "415: Unsupported Media Type"


# -- JSON merge patch --------------------------------------------------------------


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists() -> None:
    original = deployment()
    snapshot = copy.deepcopy(original)
    patch = {"metadata": {"labels": {"tier": "fe", "app": None}},
             "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "a", "image": "a:9"}]}}}}
    result = json_merge_patch(original, patch)
    assert result["metadata"]["labels"] == {"tier": "fe"}
    assert result["spec"]["replicas"] == 5
    assert containers(result) == [{"name": "a", "image": "a:9"}]
    assert result["spec"]["strategy"] == snapshot["spec"]["strategy"]
    assert original == snapshot


def test_merge_patch_drops_nulls_in_new_values_and_result_is_independent() -> None:
    original = {"data": {"a": "1"}}
    patch = {"spec": {"x": None, "y": 1}, "data": {"a": None}}
    result = json_merge_patch(original, patch)
    assert result == {"data": {}, "spec": {"y": 1}}
    result["spec"]["y"] = 2
    assert patch["spec"]["y"] == 1


def test_merge_patch_scalar_replaces_map() -> None:
    assert json_merge_patch({"a": {"b": 1}}, {"a": "s"}) == {"a": "s"}
    assert json_merge_patch({"a": "s"}, {"a": {"b": 1, "c": None}}) == {"a": {"b": 1}}


def test_merge_patch_rejects_non_object_body() -> None:
    with pytest.raises(ApiError) as exc:
        json_merge_patch({}, [1])  # type: ignore[arg-type]
    assert exc.value.code == 400


# -- JSON patch ----------------------------------------------------------------------


def test_json_patch_all_operations() -> None:
    original = {"metadata": {"name": "x", "annotations": {"a/b": "1"}}, "list": [1, 2, 3]}
    snapshot = copy.deepcopy(original)
    ops = [
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
        {"op": "add", "path": "/list/-", "value": 4},
        {"op": "add", "path": "/list/0", "value": 0},
        {"op": "remove", "path": "/list/1"},
        {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "2"},
        {"op": "copy", "from": "/metadata/labels", "path": "/copied"},
        {"op": "move", "from": "/metadata/name", "path": "/moved"},
        {"op": "test", "path": "/list", "value": [0, 2, 3, 4]},
    ]
    result = json_patch(original, ops)
    assert result == {
        "metadata": {"annotations": {"a/b": "2"}, "labels": {"k": "v"}},
        "list": [0, 2, 3, 4],
        "copied": {"k": "v"},
        "moved": "x",
    }
    assert original == snapshot
    result["copied"]["k"] = "changed"
    assert result["metadata"]["labels"] == {"k": "v"}
    assert ops[0]["value"] == {"k": "v"}


def test_json_patch_replace_on_missing_key_acts_like_add() -> None:
    # kubectl rollout undo sends exactly this when the deployment has no annotations.
    original = {"metadata": {"name": "web"}, "spec": {"template": {"old": True}}}
    ops = [{"op": "replace", "path": "/spec/template", "value": {"new": True}},
           {"op": "replace", "path": "/metadata/annotations", "value": {"a": "b"}}]
    result = json_patch(original, ops)
    assert result == {"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"template": {"new": True}}}


def test_json_patch_failed_test_is_422_invalid() -> None:
    with pytest.raises(ApiError) as exc:
        json_patch({"spec": {"replicas": 1}}, [{"op": "test", "path": "/spec/replicas", "value": 2}])
    assert exc.value.code == 422
    assert exc.value.reason == "Invalid"
    assert exc.value.message == "the server rejected our request due to an error in our request"


def test_json_patch_test_keeps_booleans_and_numbers_apart() -> None:
    with pytest.raises(ApiError):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": True}])
    assert json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}


@pytest.mark.parametrize("op", [
    {"op": "remove", "path": "/missing"},
    {"op": "replace", "path": "/list/5", "value": 1},
    {"op": "add", "path": "/nope/deeper", "value": 1},
    {"op": "add", "path": "no-slash", "value": 1},
    {"op": "add", "path": "/list/01", "value": 1},
    {"op": "add", "path": "/x"},
    {"op": "frobnicate", "path": "/x"},
    {"op": "move", "from": "/obj", "path": "/obj/inner"},
    {"op": "copy", "from": "/missing", "path": "/x"},
])
def test_json_patch_invalid_operations_are_422(op: dict) -> None:
    with pytest.raises(ApiError) as exc:
        json_patch({"list": [1], "obj": {}}, [op])
    assert (exc.value.code, exc.value.reason) == (422, "Invalid")


def test_json_patch_failure_leaves_original_untouched() -> None:
    original = {"a": {"b": 1}}
    with pytest.raises(ApiError):
        json_patch(original, [{"op": "add", "path": "/a/c", "value": 2}, {"op": "remove", "path": "/zzz"}])
    assert original == {"a": {"b": 1}}


@pytest.mark.parametrize("ops", [{"op": "add"}, ["add"], [{"path": "/a"}], [{"op": "add", "value": 1}],
                                 [{"op": 1, "path": "/a"}]])
def test_json_patch_malformed_body_is_400(ops: object) -> None:
    with pytest.raises(ApiError) as exc:
        json_patch({}, ops)  # type: ignore[arg-type]
    assert exc.value.code == 400


# -- Strategic merge patch: maps and plain lists -----------------------------------------


def test_smp_maps_merge_and_null_deletes_without_mutating_inputs() -> None:
    original = deployment()
    snapshot = copy.deepcopy(original)
    patch = {"metadata": {"labels": {"tier": "fe"}}, "spec": {"replicas": None, "paused": True}}
    patch_snapshot = copy.deepcopy(patch)
    result = strategic_merge_patch(original, patch, DEPLOYMENT)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert "replicas" not in result["spec"]
    assert result["spec"]["paused"] is True
    assert original == snapshot and patch == patch_snapshot
    containers(result)[0]["image"] = "changed"
    assert containers(original)[0]["image"] == "a:1"


def test_smp_rollout_restart_and_pause_resume() -> None:
    restarted = strategic_merge_patch(deployment(), {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-24T17:28:27Z"}}}}}, DEPLOYMENT)
    assert restarted["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-24T17:28:27Z"}}
    paused = strategic_merge_patch(deployment(), {"spec": {"paused": True}}, DEPLOYMENT)
    resumed = strategic_merge_patch(paused, {"spec": {"paused": None}}, DEPLOYMENT)
    assert "paused" not in resumed["spec"]


def test_smp_lists_without_merge_strategy_are_replaced() -> None:
    patch = {"spec": {"template": {"spec": {
        "tolerations": [{"key": "k2", "operator": "Exists"}],
        "containers": [{"name": "a", "args": ["z"]}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "k2", "operator": "Exists"}]
    assert containers(result)[0]["args"] == ["z"]


# -- Strategic merge patch: merge lists --------------------------------------------------


def test_smp_containers_merge_by_name_in_place() -> None:
    result = strategic_merge_patch(
        deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}, DEPLOYMENT)
    assert [c["name"] for c in containers(result)] == ["a", "b"]
    assert containers(result)[1] == {"name": "b", "image": "b:2"}
    assert containers(result)[0]["image"] == "a:1"


def test_smp_new_container_comes_first() -> None:
    result = strategic_merge_patch(
        deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c:1"}]}}}}, DEPLOYMENT)
    assert [c["name"] for c in containers(result)] == ["c", "a", "b"]


def test_smp_adding_port_82_to_80_81_puts_it_first() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 82}]}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert [p["containerPort"] for p in containers(result)[0]["ports"]] == [82, 80, 81]


def test_smp_env_merges_by_name() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "env": [{"name": "E2", "value": "two"}, {"name": "E3", "value": "3"}]}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert containers(result)[0]["env"] == [
        {"name": "E1", "value": "1"}, {"name": "E2", "value": "two"}, {"name": "E3", "value": "3"}]


def test_smp_volume_mounts_merge_by_mount_path() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True},
                                       {"name": "cfg", "mountPath": "/cfg"}]}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert containers(result)[0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True}, {"name": "cfg", "mountPath": "/cfg"}]


def test_smp_delete_directive_removes_list_element() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert [c["name"] for c in containers(result)] == ["a"]
    assert_no_directives(result)


def test_smp_replace_directive_element_replaces_whole_list() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "env": [{"$patch": "replace"}, {"name": "ONLY2", "value": "1"}]}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert containers(result)[0]["env"] == [{"name": "ONLY2", "value": "1"}]
    assert_no_directives(result)


def test_smp_service_ports_merge_by_port() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                  {"name": "https", "port": 443, "targetPort": 8443}]}}
    patch = {"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 53, "protocol": "UDP"}]}}
    result = strategic_merge_patch(service, patch, SERVICE)
    # Patch elements keep patch order among themselves (443 before the new 53),
    # and the untouched 80 stays ahead of 443 as it was originally.
    assert result["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443, "targetPort": 9443},
        {"port": 53, "protocol": "UDP"},
    ]


def test_smp_owner_references_merge_by_uid_and_conditions_by_type() -> None:
    original = {"metadata": {"name": "p", "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs"}]},
                "status": {"conditions": [{"type": "Ready", "status": "False"},
                                          {"type": "PodScheduled", "status": "True"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "u2", "kind": "Job", "name": "j"}]},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    result = strategic_merge_patch(original, patch, POD)
    assert [o["uid"] for o in result["metadata"]["ownerReferences"]] == ["u2", "u1"]
    assert result["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                              {"type": "PodScheduled", "status": "True"}]


def test_smp_finalizers_merge_as_a_set_new_first() -> None:
    original = {"metadata": {"name": "x", "finalizers": ["x/b"]}}
    result = strategic_merge_patch(original, {"metadata": {"finalizers": ["x/c", "x/b"]}}, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["x/c", "x/b"]
    result = strategic_merge_patch(original, {"metadata": {"finalizers": ["x/c"]}}, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["x/c", "x/b"]


def test_smp_delete_from_primitive_list() -> None:
    original = {"metadata": {"name": "x", "finalizers": ["x/a", "x/b"]}}
    result = strategic_merge_patch(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/a"]}},
                                   CONFIGMAP)
    assert result["metadata"] == {"name": "x", "finalizers": ["x/b"]}
    untouched = strategic_merge_patch({"metadata": {"name": "x"}},
                                      {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/a"]}}, CONFIGMAP)
    assert untouched == {"metadata": {"name": "x"}}


def test_smp_merge_element_without_merge_key_is_bad_request() -> None:
    with pytest.raises(ApiError) as exc:
        strategic_merge_patch(deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
                              DEPLOYMENT)
    assert exc.value.code == 400


def test_smp_unknown_list_directive_is_bad_request() -> None:
    with pytest.raises(ApiError) as exc:
        strategic_merge_patch(deployment(), {"spec": {"template": {"spec": {"containers": [
            {"name": "a", "$patch": "merge"}]}}}}, DEPLOYMENT)
    assert exc.value.code == 400


# -- Strategic merge patch: map directives ----------------------------------------------


def test_smp_replace_directive_in_map_replaces_it() -> None:
    patch = {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    patch = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert strategic_merge_patch(deployment(), patch, DEPLOYMENT)["metadata"]["labels"] == {"only": "this"}


def test_smp_delete_directive_in_map_deletes_it() -> None:
    result = strategic_merge_patch(deployment(), {"spec": {"strategy": {"$patch": "delete"}}}, DEPLOYMENT)
    assert "strategy" not in result["spec"]
    absent = strategic_merge_patch({"spec": {}}, {"spec": {"strategy": {"$patch": "delete"}}}, DEPLOYMENT)
    assert absent == {"spec": {}}


def test_smp_unknown_map_directive_is_bad_request() -> None:
    with pytest.raises(ApiError) as exc:
        strategic_merge_patch(deployment(), {"spec": {"$patch": "frob"}}, DEPLOYMENT)
    assert exc.value.code == 400


def test_smp_retain_keys_on_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_retain_keys_on_volume_item() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [
        {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/srv"}}]}}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}}]


def test_smp_retain_keys_must_cover_patched_fields() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "RollingUpdate",
                                   "rollingUpdate": {"maxSurge": 1}}}}
    with pytest.raises(ApiError) as exc:
        strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert exc.value.code == 400


# -- Strategic merge patch: $setElementOrder ------------------------------------------


def test_smp_kubectl_apply_body_with_set_element_order() -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["containers"] = [{"name": "nginx", "image": "nginx:1.25",
                                                      "ports": [{"containerPort": 80}]}]
    last_applied = '{"apiVersion":"apps/v1","kind":"Deployment"}\n'
    body = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
            "spec": {"replicas": 3, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}
    result = strategic_merge_patch(live, body, DEPLOYMENT)
    assert result["spec"]["replicas"] == 3
    assert containers(result) == [{"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}]
    assert result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == last_applied
    assert_no_directives(result)


def test_smp_set_element_order_fixes_final_order() -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "c", "image": "c:1"})
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
        "containers": [{"name": "c", "image": "c:2"}]}}}}
    result = strategic_merge_patch(live, body, DEPLOYMENT)
    assert [(c["name"], c["image"]) for c in containers(result)] == [("c", "c:2"), ("a", "a:1"), ("b", "b:1")]


def test_smp_set_element_order_alone_reorders_and_keeps_server_only_items() -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "c", "image": "c:1"})
    body = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}
    result = strategic_merge_patch(live, body, DEPLOYMENT)
    assert [c["name"] for c in containers(result)] == ["b", "a", "c"]


def test_smp_set_element_order_with_deletion() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "b", "$patch": "delete"}]}}}}
    result = strategic_merge_patch(deployment(), body, DEPLOYMENT)
    assert [c["name"] for c in containers(result)] == ["a"]


def test_smp_set_element_order_for_primitive_list() -> None:
    body = {"metadata": {"$setElementOrder/finalizers": ["x/b", "x/new", "x/a"], "finalizers": ["x/new"]}}
    result = strategic_merge_patch(deployment(), body, DEPLOYMENT)
    assert result["metadata"]["finalizers"] == ["x/b", "x/new", "x/a"]


def test_smp_set_element_order_contradicting_patch_is_rejected() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "b:2"}, {"name": "a", "image": "a:2"}]}}}}
    with pytest.raises(ApiError) as exc:
        strategic_merge_patch(deployment(), body, DEPLOYMENT)
    assert exc.value.code == 400


def test_smp_set_element_order_missing_patch_item_is_rejected() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "z", "image": "z:1"}]}}}}
    with pytest.raises(ApiError) as exc:
        strategic_merge_patch(deployment(), body, DEPLOYMENT)
    assert exc.value.code == 400


# -- Strategic merge patch: directives never leak ---------------------------------------


def test_smp_directives_stripped_from_new_values() -> None:
    original = {"metadata": {"name": "p"}, "spec": {}}
    patch = {"spec": {
        "containers": [{"$patch": "replace"}, {"name": "a", "image": "a",
                                              "env": [{"name": "X", "$patch": "delete"}, {"name": "Y"}]}],
        "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
        "$setElementOrder/initContainers": [{"name": "i"}],
        "initContainers": [{"name": "i", "image": "i", "command": None}],
    }}
    result = strategic_merge_patch(original, patch, POD)
    assert_no_directives(result)
    assert result["spec"] == {
        "containers": [{"name": "a", "image": "a", "env": [{"name": "Y"}]}],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "initContainers": [{"name": "i", "image": "i"}],
    }


def test_smp_top_level_replace_and_delete() -> None:
    assert strategic_merge_patch({"data": {"a": "1"}}, {"$patch": "replace", "data": {"b": "2"}},
                                 CONFIGMAP) == {"data": {"b": "2"}}
    assert strategic_merge_patch({"data": {"a": "1"}}, {"$patch": "delete"}, CONFIGMAP) == {}


def test_smp_configmap_data_merges() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    result = strategic_merge_patch(cm, {"data": {"a": None, "c": "3"}}, CONFIGMAP)
    assert result["data"] == {"b": "2", "c": "3"}


# -- Strategic merge patch without a schema ------------------------------------------------


def test_smp_without_schema_behaves_like_merge_patch_for_lists() -> None:
    original = {"spec": {"items": [{"name": "a", "v": 1}, {"name": "b"}], "m": {"x": 1}}}
    patch = {"spec": {"items": [{"name": "a", "v": 2}], "m": {"y": 2, "x": None}}}
    result = strategic_merge_patch(original, patch, None)
    assert result == json_merge_patch(original, patch)
    assert result == {"spec": {"items": [{"name": "a", "v": 2}], "m": {"y": 2}}}


def test_smp_without_schema_still_handles_directives() -> None:
    original = {"spec": {"a": {"x": 1, "y": 2}, "b": {"k": 1}, "c": {"p": 1, "q": 2}}}
    patch = {"spec": {"a": {"$patch": "replace", "z": 3}, "b": {"$patch": "delete"},
                      "c": {"$retainKeys": ["p"], "p": 5},
                      "items": [{"$patch": "replace"}, {"name": "n"}]}}
    result = strategic_merge_patch(original, patch, None)
    assert result == {"spec": {"a": {"z": 3}, "c": {"p": 5}, "items": [{"name": "n"}]}}
