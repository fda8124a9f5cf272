"""LimitRanger's rules (kybernetes/api/limitrange.py) and LimitRange validation, worded as upstream."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api import limitrange as lr
from kybernetes.api.kinds.policy import LimitRangeStrategy
from kybernetes.api.registry import Registry

Obj = dict[str, Any]


def limit_range(*items: Obj) -> Obj:
    return {"metadata": {"name": "lr", "namespace": "ns"}, "spec": {"limits": list(items)}}


def pod(*containers: Obj, init: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}


def container(name: str = "c", requests: Obj | None = None, limits: Obj | None = None) -> Obj:
    c: Obj = {"name": name, "image": "busybox"}
    res: Obj = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    if res:
        c["resources"] = res
    return c


# -- defaults ------------------------------------------------------------------------------

def test_defaults_fill_requests_and_limits_and_annotate() -> None:
    p = pod(container("web"), container("side", requests={"cpu": "50m"}))
    r = limit_range({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                     "defaultRequest": {"cpu": "100m", "memory": "128Mi"}})
    assert lr.default_pod(p, r)
    web, side = p["spec"]["containers"]
    assert web["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert side["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert p["metadata"]["annotations"][lr.ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web; "
        "memory request for container side; cpu, memory limit for container side")


def test_defaults_for_init_containers_are_named_so() -> None:
    p = pod(container("c", requests={"cpu": "1"}, limits={"cpu": "1"}), init=[container("setup")])
    lr.default_pod(p, limit_range({"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}}))
    assert p["metadata"]["annotations"][lr.ANNOTATION] == (
        "LimitRanger plugin set: cpu request for init container setup; cpu limit for init container setup")


def test_nothing_set_leaves_the_pod_alone() -> None:
    p = pod(container(requests={"cpu": "1"}, limits={"cpu": "2"}))
    assert not lr.default_pod(p, limit_range({"type": "Container", "default": {"cpu": "1"}}))
    assert "annotations" not in p["metadata"]
    assert not lr.default_pod(p, limit_range({"type": "Pod", "max": {"cpu": "4"}}))


def test_a_limit_given_keeps_its_request_from_pod_defaulting() -> None:
    # Pod defaulting (before admission) copied the limit into the request: the
    # LimitRange's defaultRequest does not replace it.
    p = pod(container(requests={"cpu": "700m"}, limits={"cpu": "700m"}))
    lr.default_pod(p, limit_range({"type": "Container", "default": {"cpu": "1", "memory": "1Gi"},
                                   "defaultRequest": {"cpu": "100m", "memory": "1Gi"}}))
    res = p["spec"]["containers"][0]["resources"]
    assert res["requests"]["cpu"] == "700m" and res["limits"]["cpu"] == "700m"
    assert res["requests"]["memory"] == "1Gi"


# -- container constraints -----------------------------------------------------------------

def test_min_and_max_per_container_messages() -> None:
    r = limit_range({"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}})
    p = pod(container("x", requests={"cpu": "50m", "memory": "1Gi"}, limits={"memory": "2Gi"}))
    msgs = lr.admit("", "pods", p, [r])
    assert msgs == ["minimum cpu usage per Container is 100m, but request is 50m",
                    "maximum memory usage per Container is 1Gi, but limit is 2Gi"]
    assert lr.aggregate(msgs) == ("[minimum cpu usage per Container is 100m, but request is 50m, "
                                  "maximum memory usage per Container is 1Gi, but limit is 2Gi]")


def test_missing_request_and_limit_messages_have_two_spaces() -> None:
    r = limit_range({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}})
    assert lr.admit("", "pods", pod(container()), [r]) == [
        "minimum cpu usage per Container is 100m.  No request is specified",
        "maximum cpu usage per Container is 1.  No limit is specified"]


def test_min_checks_the_limit_too_and_max_the_request() -> None:
    r = limit_range({"type": "Container", "min": {"cpu": "200m"}})
    assert lr.admit("", "pods", pod(container(requests={"cpu": "300m"}, limits={"cpu": "150m"})), [r]) == [
        "minimum cpu usage per Container is 200m, but limit is 150m"]
    r = limit_range({"type": "Container", "max": {"cpu": "1"}})
    assert lr.admit("", "pods", pod(container(requests={"cpu": "2"}, limits={"cpu": "1"})), [r]) == [
        "maximum cpu usage per Container is 1, but request is 2"]


def test_quantities_compare_by_value_not_spelling() -> None:
    r = limit_range({"type": "Container", "min": {"memory": "1Gi"}, "max": {"cpu": "0.5"}})
    p = pod(container(requests={"memory": "1024Mi", "cpu": "500m"}, limits={"memory": "1Gi", "cpu": "500m"}))
    assert lr.admit("", "pods", p, [r]) == []
    p = pod(container(requests={"memory": "1000Mi"}, limits={"cpu": "501m"}))
    assert lr.admit("", "pods", p, [r]) == [
        "minimum memory usage per Container is 1Gi, but request is 1000Mi",
        "maximum cpu usage per Container is 500m, but limit is 501m"]


@pytest.mark.parametrize(("request_", "limit", "want"), [
    ("250m", "1", "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"),
    ("300m", "1", "cpu max limit to request ratio per Container is 2, but provided ratio is 3.333333"),
    ("500m", "1", None),
    (None, "1", "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"),
    ("0", "1", "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"),
    ("1", None, "cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"),
])
def test_limit_to_request_ratio(request_: str | None, limit: str | None, want: str | None) -> None:
    r = limit_range({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}})
    c = container(requests={"cpu": request_} if request_ else None, limits={"cpu": limit} if limit else None)
    assert lr.admit("", "pods", pod(c), [r]) == ([want] if want else [])


def test_every_container_and_init_container_is_checked() -> None:
    r = limit_range({"type": "Container", "max": {"cpu": "1"}})
    p = pod(container("a", limits={"cpu": "2"}), container("b", limits={"cpu": "3"}),
            init=[container("i", limits={"cpu": "4"})])
    assert lr.admit("", "pods", p, [r]) == [
        "maximum cpu usage per Container is 1, but limit is 2",
        "maximum cpu usage per Container is 1, but limit is 3",
        "maximum cpu usage per Container is 1, but limit is 4"]


def test_the_same_message_twice_is_reported_once() -> None:
    r = limit_range({"type": "Container", "max": {"cpu": "1"}})
    p = pod(container("a", limits={"cpu": "2"}), container("b", limits={"cpu": "2"}))
    msgs = lr.admit("", "pods", p, [r, r])
    assert msgs == ["maximum cpu usage per Container is 1, but limit is 2"]
    assert lr.aggregate(msgs) == msgs[0]


# -- pod constraints -----------------------------------------------------------------------

def test_pod_max_is_checked_on_the_sum_of_containers() -> None:
    r = limit_range({"type": "Pod", "max": {"cpu": "1", "memory": "1Gi"}})
    p = pod(container("a", requests={"cpu": "600m", "memory": "512Mi"}, limits={"cpu": "600m", "memory": "512Mi"}),
            container("b", requests={"cpu": "600m", "memory": "512Mi"}, limits={"cpu": "600m", "memory": "1Gi"}))
    assert lr.admit("", "pods", p, [r]) == [
        "maximum cpu usage per Pod is 1, but limit is 1200m",
        "maximum memory usage per Pod is 1Gi, but limit is 1536Mi"]


def test_pod_min_takes_the_largest_init_container() -> None:
    r = limit_range({"type": "Pod", "min": {"cpu": "500m"}})
    p = pod(container("a", requests={"cpu": "100m"}), init=[container("i", requests={"cpu": "600m"})])
    assert lr.admit("", "pods", p, [r]) == []
    p = pod(container("a", requests={"cpu": "100m"}), init=[container("i", requests={"cpu": "200m"})])
    assert lr.admit("", "pods", p, [r]) == ["minimum cpu usage per Pod is 500m, but request is 200m"]


def test_pod_ratio() -> None:
    r = limit_range({"type": "Pod", "maxLimitRequestRatio": {"memory": "2"}})
    p = pod(container("a", requests={"memory": "100Mi"}, limits={"memory": "300Mi"}))
    assert lr.admit("", "pods", p, [r]) == [
        "memory max limit to request ratio per Pod is 2, but provided ratio is 3.000000"]


# -- claims --------------------------------------------------------------------------------

def claim(storage: str | None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {}}
    if storage:
        spec["resources"]["requests"] = {"storage": storage}
    return {"metadata": {"name": "data", "namespace": "ns"}, "spec": spec}


@pytest.mark.parametrize(("storage", "want"), [
    ("500Mi", ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]),
    ("1Gi", []),
    ("10Gi", []),
    ("20Gi", ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]),
    (None, ["minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
            "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified"]),
])
def test_claim_min_and_max_storage(storage: str | None, want: list[str]) -> None:
    r = limit_range({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}})
    assert lr.admit("", "persistentvolumeclaims", claim(storage), [r]) == want


def test_container_items_do_not_apply_to_claims() -> None:
    r = limit_range({"type": "Container", "max": {"cpu": "1"}})
    assert lr.admit("", "persistentvolumeclaims", claim("1Gi"), [r]) == []
    assert lr.applies("", "pods") and lr.applies("", "persistentvolumeclaims")
    assert not lr.applies("apps", "deployments") and not lr.applies("", "services")


# -- LimitRange validation -----------------------------------------------------------------

def _validate(items: list[Obj]) -> list[str]:
    info = Registry().get("", "v1", "limitranges")
    assert info is not None
    strategy = LimitRangeStrategy()
    obj = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr", "namespace": "ns"},
           "spec": {"limits": items}}
    strategy.default(info, obj)
    return [f"{e.field}: {e.message()}" for e in strategy.validate(info, obj)]


def test_valid_limit_range_passes() -> None:
    assert _validate([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "2"},
                       "default": {"cpu": "1"}, "defaultRequest": {"cpu": "500m"},
                       "maxLimitRequestRatio": {"cpu": "4"}},
                      {"type": "Pod", "max": {"memory": "4Gi"}},
                      {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}}]) == []


def test_min_greater_than_max() -> None:
    # Defaulting copied max into default, and default into defaultRequest.
    assert _validate([{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]) == [
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
        'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than default request value 1',
        'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 1',
    ]


def test_default_above_max_and_request_above_default() -> None:
    assert _validate([{"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "2Gi"},
                       "defaultRequest": {"memory": "512Mi"}}]) == [
        'spec.limits[0].default[memory]: Invalid value: "1Gi": default value 2Gi is greater than max value 1Gi']
    assert _validate([{"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}}]) == [
        'spec.limits[0].defaultRequest[cpu]: Invalid value: "2": default request value 2 is greater than '
        'default limit value 1']


def test_ratio_rules() -> None:
    assert _validate([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}]) == [
        'spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less than 1']
    assert _validate([{"type": "Pod", "min": {"cpu": "1"}, "max": {"cpu": "2"},
                       "maxLimitRequestRatio": {"cpu": "3"}}]) == [
        'spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "3": ratio 3 is greater than max/min = 2.000000']


def test_pod_items_take_no_defaults_and_claims_need_storage() -> None:
    assert _validate([{"type": "Pod", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}}]) == [
        "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'",
        "spec.limits[0].defaultRequest: Forbidden: may not be specified when `type` is 'Pod'"]
    assert _validate([{"type": "PersistentVolumeClaim", "max": {"cpu": "1"}}]) == [
        "spec.limits[0].limits: Required value: either minimum or maximum storage value is required, "
        "but neither was provided"]


def test_duplicate_types() -> None:
    assert _validate([{"type": "Pod", "max": {"cpu": "1"}}, {"type": "Pod", "max": {"cpu": "2"}}]) == [
        'spec.limits[1].type: Duplicate value: "Pod"']


def test_container_resource_names() -> None:
    # (defaulting copied max into default and defaultRequest, which are named too)
    assert _validate([{"type": "Pod", "max": {"pods": "1"}, "min": {"cpu": "1"}}]) == [
        'spec.limits[0].max[pods]: Invalid value: "pods": must be a standard resource for containers']
    assert _validate([{"type": "PersistentVolumeClaim", "max": {"storage": "1Gi", "pods": "1"}}]) == []
