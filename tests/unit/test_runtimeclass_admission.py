"""Upstream's RuntimeClass admission plugin as pure rules, and the refusal of image volumes."""

from __future__ import annotations

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.runtimeclass import (
    admit_runtime_class,
    handler_of,
    image_volume_errors,
    merge_tolerations,
    overhead_error,
    same_resources,
)

KATA = {"metadata": {"name": "kata"}, "handler": "kata",
        "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
        "scheduling": {"nodeSelector": {"runtime": "kata"},
                       "tolerations": [{"key": "kata", "operator": "Exists", "effect": "NoSchedule"}]}}
CLASSES = {"kata": KATA, "runc": {"metadata": {"name": "runc"}, "handler": "runc"}}


def pod(**spec):
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}


def test_unknown_class_is_refused_with_upstreams_message():
    with pytest.raises(ApiError) as e:
        admit_runtime_class(pod(runtimeClassName="nope"), CLASSES.get)
    assert e.value.code == 403
    assert e.value.message == 'pods "p" is forbidden: pod rejected: RuntimeClass "nope" not found'


def test_overhead_and_scheduling_are_merged_into_the_pod():
    p = pod(runtimeClassName="kata", nodeSelector={"zone": "a"},
            tolerations=[{"key": "other", "operator": "Equal", "value": "x"}])
    admit_runtime_class(p, CLASSES.get)
    assert p["spec"]["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert p["spec"]["nodeSelector"] == {"zone": "a", "runtime": "kata"}
    assert p["spec"]["tolerations"] == [{"key": "other", "operator": "Equal", "value": "x"},
                                        {"key": "kata", "operator": "Exists", "effect": "NoSchedule"}]
    assert overhead_error(p, CLASSES.get) is None


def test_a_pod_without_a_selector_gets_the_classes():
    p = pod(runtimeClassName="kata")
    admit_runtime_class(p, CLASSES.get)
    assert p["spec"]["nodeSelector"] == {"runtime": "kata"}


def test_a_selector_conflict_is_refused():
    with pytest.raises(ApiError) as e:
        admit_runtime_class(pod(runtimeClassName="kata", nodeSelector={"runtime": "runc"}), CLASSES.get)
    assert e.value.message.endswith(
        "conflict: runtimeClass.scheduling.nodeSelector[runtime] = kata; pod.spec.nodeSelector[runtime] = runc")


def test_an_overhead_that_differs_is_refused_an_equal_one_accepted():
    with pytest.raises(ApiError) as e:
        admit_runtime_class(pod(runtimeClassName="kata", overhead={"cpu": "1"}), CLASSES.get)
    assert e.value.message.endswith("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
    p = pod(runtimeClassName="kata", overhead={"cpu": "0.25", "memory": "120Mi"})
    admit_runtime_class(p, CLASSES.get)
    assert p["spec"]["overhead"] == {"cpu": "250m", "memory": "120Mi"}


def test_overhead_without_a_class_that_defines_one_is_refused():
    err = overhead_error(pod(overhead={"cpu": "1"}), CLASSES.get)
    assert err is not None and err.message.endswith(
        "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
    err = overhead_error(pod(runtimeClassName="runc", overhead={"cpu": "1"}), CLASSES.get)
    assert err is not None
    assert overhead_error(pod(runtimeClassName="runc"), CLASSES.get) is None
    assert overhead_error(pod(), CLASSES.get) is None


def test_merge_tolerations_drops_covered_ones():
    exists_all = {"operator": "Exists"}
    eq = {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}
    assert merge_tolerations([eq], [exists_all]) == [exists_all]
    assert merge_tolerations([eq], [dict(eq)]) == [eq]
    other = {"key": "k", "value": "w"}
    assert merge_tolerations([eq], [other]) == [eq, other]
    limited = {"key": "n", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
    longer = {"key": "n", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
    assert merge_tolerations([limited], [longer]) == [longer]


def test_same_resources_compares_quantities():
    assert same_resources({"cpu": "1000m"}, {"cpu": "1"})
    assert not same_resources({"cpu": "1"}, {"cpu": "1", "memory": "1Mi"})
    assert not same_resources({"cpu": "1"}, {"cpu": "2"})


def test_image_volumes_are_refused_field_by_field():
    p = pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "b", "image": {"reference": "busybox:1.35"}}])
    errs = image_volume_errors(p)
    assert [e.field for e in errs] == ["spec.volumes[1].image"]
    assert "cannot mount an OCI image" in errs[0].message()
    assert image_volume_errors(pod()) == []


def test_handler_of():
    assert handler_of(KATA) == "kata" and handler_of(None) == ""
