"""Defaulting of built-in kinds and custom resources."""

from __future__ import annotations

import copy

import pytest

from kybernetes.api.defaults import apply_defaults, default_pull_policy
from kybernetes.api.registry import Registry, ResourceInfo

REG = Registry()


def info(group: str, kind: str) -> ResourceInfo:
    for candidate in REG.all():
        if candidate.group == group and candidate.kind == kind:
            return candidate
    raise KeyError(kind)


def template(**spec_extra) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}],
                     **spec_extra}}


def test_pod_defaults_match_a_real_pod():
    pod = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "resources": {"limits": {"cpu": "1"}},
                                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                    "livenessProbe": {"httpGet": {"port": 8080}}}],
                    "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "scratch"},
                                {"name": "host", "hostPath": {"path": "/tmp"}}]}}
    apply_defaults(info("", "Pod"), pod)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert "priority" not in spec  # resolved by the Priority admission rule, not by defaults
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Always"  # untagged means :latest
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["livenessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cfg"]["configMap"]["defaultMode"] == 420
    assert volumes["scratch"]["emptyDir"] == {}
    assert volumes["host"]["hostPath"]["type"] == ""
    tolerated = {t["key"] for t in spec["tolerations"]}
    assert tolerated == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def test_explicit_values_are_kept():
    pod = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                               "enableServiceLinks": False,
                                               "containers": [{"name": "c", "image": "x:1", "imagePullPolicy": "Never"}]}}
    apply_defaults(info("", "Pod"), pod)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:v2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy(image, policy):
    assert default_pull_policy(image) == policy


def test_deployment_defaults_match_captured_server_output():
    dep = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template()}}
    apply_defaults(info("apps", "Deployment"), dep)
    spec = dep["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["replicas"] == 2
    pod_spec = spec["template"]["spec"]
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod_spec["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    # Pod-only defaults must not leak into templates (they would change template hashes).
    assert "enableServiceLinks" not in pod_spec
    assert "priority" not in pod_spec
    assert "tolerations" not in pod_spec


def test_deployment_replicas_default_and_recreate_strategy():
    dep = {"metadata": {"name": "web"}, "spec": {"strategy": {"type": "Recreate"}, "template": template()}}
    apply_defaults(info("apps", "Deployment"), dep)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_statefulset_daemonset_replicaset_defaults():
    sts = {"metadata": {"name": "s"}, "spec": {"template": template()}}
    apply_defaults(info("apps", "StatefulSet"), sts)
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert (sts["spec"]["replicas"], sts["spec"]["revisionHistoryLimit"]) == (1, 10)
    ds = {"metadata": {"name": "d"}, "spec": {"template": template()}}
    apply_defaults(info("apps", "DaemonSet"), ds)
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    rs = {"metadata": {"name": "r"}, "spec": {"template": template()}}
    apply_defaults(info("apps", "ReplicaSet"), rs)
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"]["spec"]["restartPolicy"] == "Always"


def test_job_defaults_leave_restart_policy_and_generate_selector():
    job = {"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"}, "spec": {"template": template()}}
    apply_defaults(info("batch", "Job"), job)
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "restartPolicy" not in spec["template"]["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "pi" and labels["controller-uid"] == "u-1"


def test_job_parallelism_only_leaves_completions_unset():
    job = {"metadata": {"name": "pi"}, "spec": {"parallelism": 3, "template": template()}}
    apply_defaults(info("batch", "Job"), job)
    assert "completions" not in job["spec"]


def test_cronjob_defaults():
    cj = {"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template()}}}}
    apply_defaults(info("batch", "CronJob"), cj)
    spec = cj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "restartPolicy" not in spec["jobTemplate"]["spec"]["template"]["spec"]


def test_service_target_port_defaults_to_port():
    svc = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                                                 "ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}}
    apply_defaults(info("", "Service"), svc)
    spec = svc["spec"]
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert spec["ports"][1]["targetPort"] == "https"
    assert (spec["type"], spec["sessionAffinity"]) == ("ClusterIP", "None")
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert "externalTrafficPolicy" not in spec


def test_service_nodeport_and_loadbalancer_defaults():
    svc = {"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                                                 "sessionAffinity": "ClientIP"}}
    apply_defaults(info("", "Service"), svc)
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
    assert svc["spec"]["allocateLoadBalancerNodePorts"] is True
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_simple_kind_defaults():
    cases = [
        (("", "Secret"), {"metadata": {"name": "s"}}, lambda o: o["type"] == "Opaque"),
        (("", "Namespace"), {"metadata": {"name": "team"}},
         lambda o: "finalizers" not in o.get("spec", {}) and o["status"]["phase"] == "Active"
         and o["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team"),
        (("", "PersistentVolumeClaim"), {"metadata": {"name": "c"}, "spec": {}},
         lambda o: o["spec"]["volumeMode"] == "Filesystem"),
        (("", "PersistentVolume"), {"metadata": {"name": "v"}, "spec": {}},
         lambda o: o["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and o["spec"]["volumeMode"] == "Filesystem"),
        (("storage.k8s.io", "StorageClass"), {"metadata": {"name": "s"}, "provisioner": "x"},
         lambda o: o["reclaimPolicy"] == "Delete" and o["volumeBindingMode"] == "Immediate"),
        (("networking.k8s.io", "NetworkPolicy"), {"metadata": {"name": "n"}, "spec": {"egress": [{}]}},
         lambda o: o["spec"]["policyTypes"] == ["Ingress", "Egress"]),
        (("autoscaling", "HorizontalPodAutoscaler"), {"metadata": {"name": "h"}, "spec": {"maxReplicas": 3}},
         lambda o: o["spec"]["minReplicas"] == 1 and o["spec"]["metrics"][0]["resource"]["name"] == "cpu"),
        (("rbac.authorization.k8s.io", "RoleBinding"),
         {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}]},
         lambda o: o["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
         and o["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"),
    ]
    for (group, kind), obj, check in cases:
        apply_defaults(info(group, kind), obj)
        assert check(obj), (kind, obj)


def test_defaults_are_idempotent():
    dep = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}
    apply_defaults(info("apps", "Deployment"), dep)
    once = copy.deepcopy(dep)
    apply_defaults(info("apps", "Deployment"), dep)
    assert dep == once


def test_custom_resource_schema_defaults():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer", "default": 3},
        "items": {"type": "array", "items": {"type": "object", "properties": {"mode": {"type": "string",
                                                                                       "default": "fast"}}}}}}}}
    cr_info = ResourceInfo("example.com", "v1", "Widget", "widgets", "widget", True, crd_schema=schema)
    obj = {"metadata": {"name": "w"}, "spec": {"items": [{}, {"mode": "slow"}]}}
    apply_defaults(cr_info, obj)
    assert obj["spec"] == {"items": [{"mode": "fast"}, {"mode": "slow"}], "size": 3}
