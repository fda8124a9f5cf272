"""The Pod strategy on its own, without a server: defaults, validation, the server-set
status, graceful deletion, the Table, and pods/binding and pods/eviction."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import new_strategies
from kybernetes.api.kinds.base import DeleteStep, UpdateStep
from kybernetes.api.kinds.pod import PodStrategy
from kybernetes.api.registry import Registry

PODS = Registry().get("", "v1", "pods")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_pod(**spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}], **spec}}


def defaulted(strategy: PodStrategy, pod: dict) -> dict:
    strategy.default(PODS, pod)
    return pod


def messages(errs) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def test_default_tolerations_use_the_seconds_the_server_was_configured_with():
    pod = defaulted(PodStrategy(default_toleration_seconds=42), new_pod())
    seconds = {t["key"]: t["tolerationSeconds"] for t in pod["spec"]["tolerations"]}
    assert seconds == {"node.kubernetes.io/not-ready": 42, "node.kubernetes.io/unreachable": 42}
    # Another server's strategies are configured independently.
    other = new_strategies().for_info(PODS)
    assert {t["tolerationSeconds"] for t in defaulted(other, new_pod())["spec"]["tolerations"]} == {300}


def test_defaults_fill_what_kubectl_leaves_out():
    pod = defaulted(PodStrategy(), new_pod())
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "priority" not in spec  # resolved by the Priority admission rule, not by defaults


def test_create_sets_pending_phase_and_qos_class_but_keeps_a_given_status():
    s = PodStrategy()
    pod = new_pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    defaulted(s, pod)
    s.prepare_for_create(PODS, pod)
    s.prepare_write(PODS, pod, None)
    assert pod["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    static = new_pod()
    static["status"] = {"phase": "Running"}
    s.prepare_for_create(PODS, static)
    assert static["status"]["phase"] == "Running"


def test_a_pod_without_containers_is_invalid():
    errs = PodStrategy().validate(PODS, {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert "spec.containers: Required value" in messages(errs)


def test_an_update_that_renames_a_container_is_refused():
    s = PodStrategy()
    old = defaulted(s, new_pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["name"] = "renamed"
    (err,) = s.validate_update(PODS, new, old)
    assert err.field == "spec"
    assert err.message().startswith("Forbidden: pod updates may not change fields other than "
                                     "`spec.containers[*].image`")
    assert err.message().endswith("changed: spec.containers[0].name")


def test_an_update_of_the_image_is_allowed():
    s = PodStrategy()
    old = defaulted(s, new_pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert s.validate_update(PODS, new, old) == []


def _bound(**status) -> dict:
    pod = new_pod(nodeName="n1")
    pod["status"] = status or {"phase": "Running"}
    return pod


def test_a_running_pod_lingers_for_its_grace_period_and_a_pending_one_goes_at_once():
    s = PodStrategy()
    assert s.delete_grace_period(_bound(), None) == 30
    assert s.delete_grace_period(new_pod(nodeName="n1", terminationGracePeriodSeconds=5), None) == 5
    assert s.delete_grace_period(_bound(), 7) == 7
    assert s.delete_grace_period(_bound(), 0) is None
    assert s.delete_grace_period(new_pod(), None) is None  # never scheduled
    assert s.delete_grace_period(_bound(phase="Succeeded"), None) is None


def test_a_zero_grace_delete_forces_a_pod_already_terminating():
    s = PodStrategy()
    pod = _bound()
    assert not s.delete_is_forced(pod, 0)
    pod["metadata"].update(deletionTimestamp="2026-01-01T00:00:30Z", deletionGracePeriodSeconds=30)
    assert s.delete_is_forced(pod, 0)
    assert not s.delete_is_forced(pod, None)
    assert PodStrategy.delete_returns_object


def test_binding_assigns_the_node_and_marks_the_pod_scheduled():
    binding = PodStrategy().actions()["binding"]
    pod = defaulted(PodStrategy(), new_pod())
    pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
    step = binding.plan("web", {"target": {"name": "n1"}}, lambda: pod, "2026-01-01T00:00:00Z")
    assert isinstance(step, UpdateStep)
    assert step.obj["spec"]["nodeName"] == "n1"
    assert step.obj["status"]["conditions"] == [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                                 "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    assert "nodeName" not in pod["spec"]  # the stored pod is not written into
    assert binding.body_kind == "Binding"
    # The server's own write: not checked against the rules for user updates, no new generation.
    assert binding.policy is not None and not binding.policy.validates and not binding.policy.bumps_generation


def test_binding_refuses_an_assigned_or_deleted_pod_and_a_missing_target():
    binding = PodStrategy().actions()["binding"]
    with pytest.raises(ApiError) as e:
        binding.plan("web", {"target": {"name": "n2"}}, lambda: new_pod(nodeName="n1"), "t")
    assert e.value.code == 409 and 'pod web is already assigned to node "n1"' in e.value.message
    deleting = new_pod()
    deleting["metadata"]["deletionTimestamp"] = "t"
    with pytest.raises(ApiError) as e:
        binding.plan("web", {"target": {"name": "n2"}}, lambda: deleting, "t")
    assert e.value.code == 409 and "is being deleted" in e.value.message

    def unread() -> dict:
        raise AssertionError("a binding without a target is refused before the pod is read")

    with pytest.raises(ApiError) as e:
        binding.plan("web", {"target": {}}, unread, "t")
    assert e.value.code == 422 and e.value.message == 'Binding "web" is invalid: target.name: Required value'


def test_eviction_deletes_with_the_evictions_options():
    eviction = PodStrategy().actions()["eviction"]
    step = eviction.plan("web", {"deleteOptions": {"gracePeriodSeconds": 0}}, lambda: new_pod(), "t")
    assert step == DeleteStep({"gracePeriodSeconds": 0})
    assert eviction.body_kind == "Eviction"


def test_table_row_of_a_completed_pod_is_marked_completed():
    s = PodStrategy()
    names = [c["name"] for c in s.columns(PODS)]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    pod = _bound(phase="Succeeded")
    pod["metadata"]["creationTimestamp"] = "2025-12-31T23:00:00Z"
    assert s.row_cells(PODS, pod, NOW)[0] == "web"
    assert s.row_conditions(pod) == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                      "message": "The pod has completed successfully."}]
    assert s.row_conditions(_bound()) is None


def test_an_update_that_leaves_the_spec_alone_is_not_validated_again_but_a_binding_node_is():
    from kybernetes.api.validation import validate_with

    strategy = PodStrategy()
    old = defaulted(strategy, new_pod())
    # A status write: the stored spec is taken as valid (it passed on create), so its
    # rules are not walked again; a changed spec is.
    status_write = copy.deepcopy(old)
    status_write["status"] = {"phase": "Running"}
    assert validate_with(strategy, PODS, status_write, old) == []
    broken = copy.deepcopy(old)
    broken["spec"]["containers"][0]["name"] = "Not_A_Name"
    assert any("spec.containers[0].name" in m for m in messages(validate_with(strategy, PODS, broken, old)))
    # A binding (which skips the update rules) changes only the node; its name must
    # still be a valid node name.
    bound = dict(old, spec=dict(old["spec"], nodeName="node-1"))
    assert strategy.validate_changed(PODS, bound, old) == []
    bad_node = dict(old, spec=dict(old["spec"], nodeName="Bad_Node"))
    assert messages(strategy.validate_changed(PODS, bad_node, old))[0].startswith("spec.nodeName")
