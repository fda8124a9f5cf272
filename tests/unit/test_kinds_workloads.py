"""Workload strategies without a server: Deployments, ReplicaSets, StatefulSets, Jobs,
and the generic rules of writes through the object, /status and /scale."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import DEFAULT
from kybernetes.api.kinds.base import MainWrite, StatusWrite
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with

REG = Registry()
DEPLOYMENTS = REG.get("apps", "v1", "deployments")
STATEFULSETS = REG.get("apps", "v1", "statefulsets")
JOBS = REG.get("batch", "v1", "jobs")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def deployment(labels: dict | None = None) -> dict:
    obj = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": labels or {"app": "web"}},
                                 "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}}
    DEFAULT.for_info(DEPLOYMENTS).default(DEPLOYMENTS, obj)
    return obj


def rejection(info, obj: dict, old: dict | None = None) -> str:
    errs = validate_with(DEFAULT.for_info(info), info, obj, old)
    assert errs, "expected the object to be rejected"
    return ApiError.invalid(info.group, info.kind, obj["metadata"]["name"], errs).message


def test_deployment_defaults_match_a_real_cluster():
    spec = deployment()["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                                                                          "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600


def test_deployment_whose_selector_does_not_match_its_template_is_rejected_as_kube_apiserver_does():
    assert rejection(DEPLOYMENTS, deployment({"app": "db"})) == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"db"}: `selector` does not match template `labels`')


def test_a_malformed_selector_is_reported_once_not_as_a_template_mismatch():
    obj = deployment()
    obj["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["web"]}]}
    message = rejection(DEPLOYMENTS, obj)
    assert "Near" in message
    assert "does not match template" not in message


def test_deployment_selector_is_immutable():
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "front"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    assert "spec.selector: Invalid value: " in rejection(DEPLOYMENTS, new, old)
    assert "field is immutable" in rejection(DEPLOYMENTS, new, old)


def test_statefulset_update_may_not_change_its_service_name():
    sts = {"metadata": {"name": "db", "namespace": "default"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres"}]}}}}
    strategy = DEFAULT.for_info(STATEFULSETS)
    strategy.default(STATEFULSETS, sts)
    assert validate_with(strategy, STATEFULSETS, sts, None) == []
    changed = copy.deepcopy(sts)
    changed["spec"]["serviceName"] = "other"
    assert "updates to statefulset spec for fields other than" in rejection(STATEFULSETS, changed, sts)


def test_job_template_must_not_restart_always():
    job = {"metadata": {"name": "once", "namespace": "default"},
           "spec": {"template": {"spec": {"restartPolicy": "Always",
                                          "containers": [{"name": "c", "image": "busybox"}]}}}}
    strategy = DEFAULT.for_info(JOBS)
    strategy.default(JOBS, job)
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in rejection(JOBS, job)


def test_a_created_deployment_starts_without_status():
    obj = deployment()
    obj["status"] = {"replicas": 5}
    DEFAULT.for_info(DEPLOYMENTS).prepare_for_create(DEPLOYMENTS, obj)
    assert obj["status"] == {}


def test_writes_to_the_object_keep_status_and_writes_to_status_keep_the_rest():
    strategy = DEFAULT.for_info(DEPLOYMENTS)
    old = deployment()
    old["status"] = {"replicas": 2}
    main = strategy.write_policy(DEPLOYMENTS, "")
    assert isinstance(main, MainWrite) and main.allocates and main.bumps_generation
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 3
    new["status"] = {"replicas": 99}
    stored = main.merge(old, new, managed_done=False)
    assert stored["spec"]["replicas"] == 3 and stored["status"] == {"replicas": 2}

    status = strategy.write_policy(DEPLOYMENTS, "status")
    assert isinstance(status, StatusWrite) and not status.bumps_generation and not status.allocates
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 7
    new["status"] = {"replicas": 1}
    stored = status.merge(old, new, managed_done=False)
    assert stored["spec"]["replicas"] == 2 and stored["status"] == {"replicas": 1}
    # No such subresource: nothing may be written through it.
    assert strategy.write_policy(DEPLOYMENTS, "finalize") is None


def test_scale_shows_and_sets_replicas():
    scale = DEFAULT.for_info(DEPLOYMENTS).scale(DEPLOYMENTS)
    assert scale is not None
    obj = deployment()
    obj["status"] = {"replicas": 2, "selector": "app=web"}
    view = scale.view(obj)
    assert view["spec"] == {"replicas": 2}
    assert view["status"] == {"replicas": 2, "selector": "app=web"}
    scaled = scale.apply(obj, {"spec": {"replicas": 5}}, "web")
    assert scaled["spec"]["replicas"] == 5 and obj["spec"]["replicas"] == 2
    with pytest.raises(ApiError) as e:
        scale.apply(obj, {"spec": {"replicas": -1}}, "web")
    assert e.value.code == 422
    assert e.value.message == ('Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
                               "must be greater than or equal to 0")
    assert DEFAULT.for_info(JOBS).scale(JOBS) is None


def test_deployment_table_columns_and_cells():
    strategy = DEFAULT.for_info(DEPLOYMENTS)
    cols = [c["name"] for c in strategy.columns(DEPLOYMENTS)]
    assert cols == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    obj = deployment()
    obj["metadata"]["creationTimestamp"] = "2025-12-31T23:00:00Z"
    obj["status"] = {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}
    assert strategy.row_cells(DEPLOYMENTS, obj, NOW) == ["web", "1/2", 2, 1, "60m", "nginx", "nginx:1.25",
                                                         "app=web"]
