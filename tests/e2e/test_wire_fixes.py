"""Wire answers real clients compare: merge patches of CronJobs (object and /status),
Endpoints listed by label across namespaces, and error Status key order on the wire."""

from __future__ import annotations

import json
import time
import uuid

from tests.e2e.test_api_semantics import call

CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "", "namespace": "default"},
    "spec": {"schedule": "*/1 * * * *", "suspend": True, "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}},
}


def _cronjob(server) -> str:
    name = "cj-" + uuid.uuid4().hex[:8]
    body = json.loads(json.dumps(CRONJOB))
    body["metadata"]["name"] = name
    code, _, got = call(server, "POST", "/apis/batch/v1/namespaces/default/cronjobs", body)
    assert code == 201, got
    return name


def test_kubectl_merge_patch_of_cronjob_shows_annotation(server, kubectl) -> None:
    name = _cronjob(server)
    out = kubectl.ok("patch", "cronjob", name, "--type=merge", "-o", "json",
                     "-p", '{"metadata":{"annotations":{"patched":"true"}}}')
    assert json.loads(out)["metadata"]["annotations"]["patched"] == "true"
    got = json.loads(kubectl.ok("get", "cronjob", name, "-o", "json"))
    assert got["metadata"]["annotations"]["patched"] == "true"


def test_merge_patch_of_cronjob_status_keeps_metadata_change(server) -> None:
    name = _cronjob(server)
    path = f"/apis/batch/v1/namespaces/default/cronjobs/{name}"
    patch = {"metadata": {"annotations": {"patched": "true"}}}
    code, _, got = call(server, "PATCH", path, patch, content_type="application/merge-patch+json")
    assert code == 200 and got["metadata"]["annotations"]["patched"] == "true", got
    code, _, got = call(server, "PATCH", path + "/status", {"metadata": {"annotations": {"status": "yes"}}},
                        content_type="application/merge-patch+json")
    assert code == 200, got
    assert got["metadata"]["annotations"] == {"patched": "true", "status": "yes"}
    code, _, got = call(server, "GET", path + "/status")
    assert got["metadata"]["annotations"]["status"] == "yes"
    # /status still ignores spec changes, as upstream's status strategy does.
    code, _, got = call(server, "PATCH", path + "/status", {"spec": {"suspend": False}},
                        content_type="application/merge-patch+json")
    assert code == 200 and got["spec"]["suspend"] is True, got


def _wait_for_endpoints_controller(server) -> None:
    """Returns once the endpoints controller has handled events queued before the call:
    it made the Endpoints of a Service created after them."""
    name = "marker-" + uuid.uuid4().hex[:6]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}
    code, _, got = call(server, "POST", "/api/v1/namespaces/default/services", svc)
    assert code == 201, got
    deadline = time.monotonic() + 60
    while call(server, "GET", f"/api/v1/namespaces/default/endpoints/{name}")[0] != 200:
        assert time.monotonic() < deadline, "endpoints controller never made the marker's Endpoints"
        time.sleep(0.1)
    call(server, "DELETE", f"/api/v1/namespaces/default/services/{name}")


def test_endpoints_listed_by_label_across_namespaces(server, kubectl) -> None:
    # An Endpoints object made by hand, without a Service, is the user's (conformance's
    # Endpoint lifecycle spec): the endpoints controller must not delete it.
    app = "ep-" + uuid.uuid4().hex[:6]
    # At its start the controller sweeps Endpoints without a Service, as upstream's does.
    _wait_for_endpoints_controller(server)
    for ns in ("default", "kube-system"):
        body = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": app, "namespace": ns, "labels": {"app": app}},
                "subsets": [{"addresses": [{"ip": "10.9.9.9"}], "ports": [{"port": 80}]}]}
        code, _, got = call(server, "POST", f"/api/v1/namespaces/{ns}/endpoints", body)
        assert code == 201, got
    _wait_for_endpoints_controller(server)
    code, _, got = call(server, "GET", "/api/v1/endpoints", params={"labelSelector": f"app={app}"})
    assert code == 200, got
    assert sorted(i["metadata"]["namespace"] for i in got["items"]) == ["default", "kube-system"]
    out = kubectl.ok("get", "endpoints", "-A", "-l", f"app={app}", "-o", "name")
    assert out.split() == [f"endpoints/{app}"] * 2


def test_not_found_status_keys_on_the_wire(server) -> None:
    code, _, got = call(server, "GET", "/api/v1/namespaces/default/configmaps/nope-nope")
    assert code == 404
    assert list(got) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert list(got["details"]) == ["name", "kind"]
