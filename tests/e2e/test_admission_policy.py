"""The built-in admission policy plugins through real kubectl against a real `kyb server`:
LimitRanger, PodSecurity and ResourceQuota (no containers: pods stay unscheduled)."""

from __future__ import annotations

import json
import uuid

import pytest

from kybernetes.testing.cluster import wait_for


@pytest.fixture
def namespace(kubectl):
    name = f"adm-{uuid.uuid4().hex[:8]}"
    kubectl.ok("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def pod_json(name: str, containers: list[dict] | None = None, **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"nodeSelector": {"x-test/unsatisfiable": "yes"}, **spec,
                                "containers": containers or [{"name": "c", "image": "pause"}]}})


RESTRICTED_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                 "seccompProfile": {"type": "RuntimeDefault"}}


def get(kubectl, namespace: str, *what: str) -> dict:
    return json.loads(kubectl.ok("-n", namespace, "get", *what, "-o", "json"))


def warnings(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines() if line.startswith("Warning: ")]


# -- LimitRanger ---------------------------------------------------------------------------

LIMITS = json.dumps({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
                     "spec": {"limits": [
                         {"type": "Container", "default": {"cpu": "200m", "memory": "256Mi"},
                          "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                          "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}},
                         {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}}]}})


def test_a_limit_range_fills_in_defaults(kubectl, namespace):
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=LIMITS)
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("plain"))
    pod = get(kubectl, namespace, "pod", "plain")
    res = pod["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "200m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    assert pod["status"]["qosClass"] == "Burstable"
    # `kubectl describe limitrange` reads what was stored (the defaults filled in by the server)
    out = kubectl.ok("-n", namespace, "describe", "limitrange", "limits")
    assert "Container" in out and "200m" in out


def test_a_limit_range_refuses_what_it_bounds(kubectl, namespace):
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=LIMITS)
    greedy = [{"name": "x", "image": "pause",
               "resources": {"requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"cpu": "50m", "memory": "2Gi"}}}]
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("greedy", greedy))
    assert r.returncode != 0
    assert ('pods "greedy" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, '
            "maximum memory usage per Container is 1Gi, but limit is 2Gi]") in r.stderr
    ratio = [{"name": "x", "image": "pause", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}}]
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("ratio", ratio))
    assert r.returncode != 0
    assert ('pods "ratio" is forbidden: cpu max limit to request ratio per Container is 2, '
            "but provided ratio is 4.000000") in r.stderr
    assert kubectl("-n", namespace, "get", "pod", "greedy").returncode != 0  # nothing stored
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "big"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(claim))
    assert r.returncode != 0
    assert ('persistentvolumeclaims "big" is forbidden: maximum storage usage per PersistentVolumeClaim is 5Gi, '
            "but request is 10Gi") in r.stderr


def test_a_bad_limit_range_is_refused(kubectl, namespace):
    bad = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad"},
           "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
                                "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}}]}}
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(bad))
    assert r.returncode != 0
    assert "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1" in r.stderr


# -- PodSecurity ---------------------------------------------------------------------------

PRIVILEGED = [{"name": "c", "image": "pause", "securityContext": {"privileged": True}}]


def test_a_restricted_namespace_refuses_a_privileged_pod_listing_every_violation(kubectl, namespace):
    kubectl.ok("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("root", PRIVILEGED, hostNetwork=True))
    assert r.returncode != 0
    assert ('pods "root" is forbidden: violates PodSecurity "restricted:latest": '
            "host namespaces (hostNetwork=true), "
            'privileged (container "c" must not set securityContext.privileged=true), '
            'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
            'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
            'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
            'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")') in r.stderr
    assert "Error from server (Forbidden)" in r.stderr
    assert kubectl("-n", namespace, "get", "pod", "root").returncode != 0
    # A pod that follows the standard is admitted, without a warning.
    good = [{"name": "c", "image": "pause", "securityContext": RESTRICTED_SC}]
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("good", good))
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr) == []


def test_warn_mode_admits_with_a_warning_kubectl_prints(kubectl, namespace):
    kubectl.ok("label", "namespace", namespace, "pod-security.kubernetes.io/warn=baseline",
               "pod-security.kubernetes.io/warn-version=v1.30")
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("priv", PRIVILEGED))
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr) == ['would violate PodSecurity "baseline:v1.30": '
                                  'privileged (container "c" must not set securityContext.privileged=true)']
    assert get(kubectl, namespace, "pod", "priv")["metadata"]["name"] == "priv"


def test_workloads_get_warnings_not_refusals(kubectl, namespace):
    kubectl.ok("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline")
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": PRIVILEGED}}}}
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(deploy))
    assert r.returncode == 0, r.stderr
    # warn follows a stricter enforce level when not labelled itself
    assert warnings(r.stderr) == ['would violate PodSecurity "baseline:latest": '
                                  'privileged (container "c" must not set securityContext.privileged=true)']


def test_labelling_a_namespace_warns_about_pods_already_there(kubectl, namespace):
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("a"))
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("b"))
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("net", hostNetwork=True))
    r = kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline")
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr) == [
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "baseline:latest"',
        "net: host namespaces"]
    r = kubectl("label", "--overwrite", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr) == [
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "restricted:latest"',
        "a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile",
        "net: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile"]
    # Relaxing says nothing; a label that does not parse is refused.
    r = kubectl("label", "--overwrite", "namespace", namespace, "pod-security.kubernetes.io/enforce=privileged")
    assert r.returncode == 0 and warnings(r.stderr) == []
    r = kubectl("label", "--overwrite", "namespace", namespace, "pod-security.kubernetes.io/enforce=strict")
    assert r.returncode != 0
    assert (f'Namespace "{namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
            'Invalid value: "strict": must be one of privileged, baseline, restricted') in r.stderr


def test_audit_mode_annotates_the_audit_event(kubectl, server, namespace):
    import os

    kubectl.ok("label", "namespace", namespace, "pod-security.kubernetes.io/audit=baseline")
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("audited", PRIVILEGED))
    assert r.returncode == 0 and warnings(r.stderr) == [], r.stderr  # audit alone neither refuses nor warns
    log = os.path.join(server.data_dir, "audit.log")

    def found() -> dict | None:
        try:
            lines = open(log, "rb").read().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            ev = json.loads(line)
            ref = ev.get("objectRef") or {}
            if (ev.get("stage") == "ResponseComplete" and ev.get("verb") == "create"
                    and ref.get("namespace") == namespace and ref.get("resource") == "pods"):
                return ev
        return None
    ev = wait_for(found, timeout=20, what="the pod's create in the audit log")
    assert ev["annotations"]["pod-security.kubernetes.io/audit-violations"] == (
        'would violate PodSecurity "baseline:latest": '
        'privileged (container "c" must not set securityContext.privileged=true)')
    assert ev["annotations"]["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"


def test_system_namespaces_stay_privileged(kubectl):
    labels = json.loads(kubectl.ok("get", "namespace", "kube-system", "-o", "json"))["metadata"].get("labels", {})
    assert not any(k.startswith("pod-security.kubernetes.io/") for k in labels)
    r = kubectl("-n", "kube-system", "create", "--dry-run=server", "-f", "-",
                stdin=pod_json("sys", PRIVILEGED, hostNetwork=True))
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr) == []


# -- ResourceQuota -------------------------------------------------------------------------

def test_a_quota_of_two_pods_refuses_the_third_and_describe_shows_usage(kubectl, namespace):
    kubectl.ok("-n", namespace, "create", "quota", "two-pods", "--hard=pods=2")
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("p1"))
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("p2"))
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("p3"))
    assert r.returncode != 0
    assert ('pods "p3" is forbidden: exceeded quota: two-pods, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr)

    def described() -> str | None:
        out = kubectl.ok("-n", namespace, "describe", "quota", "two-pods")
        rows = [line.split() for line in out.splitlines()]
        return out if ["pods", "2", "2"] in rows else None
    out = wait_for(described, timeout=30, what="quota usage in kubectl describe")
    assert "Resource" in out and "Used" in out and "Hard" in out


def test_quota_counts_what_the_limit_range_filled_in(kubectl, namespace):
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=LIMITS)
    kubectl.ok("-n", namespace, "create", "quota", "compute", "--hard=requests.cpu=250m,limits.memory=1Gi")
    # The LimitRange fills in requests before quota counts them: 100m each.
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("one"))
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("two"))
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("three"))
    assert r.returncode != 0
    assert ('exceeded quota: compute, requested: requests.cpu=100m, used: requests.cpu=200m, '
            "limited: requests.cpu=250m") in r.stderr
    used = wait_for(lambda: (u := get(kubectl, namespace, "quota", "compute")["status"].get("used", {}))
                    .get("limits.memory") == "512Mi" and u)
    assert used["requests.cpu"] == "200m"


def test_a_priority_class_scoped_quota_counts_only_its_pods(kubectl, namespace):
    pc = f"{namespace}-high"
    kubectl.ok("create", "priorityclass", pc, "--value=1000")
    try:
        scoped = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "high"},
                  "spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
                      {"scopeName": "PriorityClass", "operator": "In", "values": [pc]}]}}}
        kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=json.dumps(scoped))
        kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("plain-1"))
        kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("plain-2"))
        kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_json("vip-1", priorityClassName=pc))
        r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_json("vip-2", priorityClassName=pc))
        assert r.returncode != 0
        assert 'pods "vip-2" is forbidden: exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1' \
            in r.stderr
        assert wait_for(lambda: get(kubectl, namespace, "quota", "high").get("status", {}).get("used")
                        == {"pods": "1"})
    finally:
        kubectl("delete", "priorityclass", pc)


# -- PodSecurity configuration (a server of its own) ---------------------------------------

ADMISSION_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
      warn: restricted
    exemptions:
      namespaces: [kube-system, exempt-me]
"""


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    from kybernetes.testing.cluster import ServerProcess

    class Kubectl:
        def __init__(self, server: ServerProcess) -> None:
            self.server = server

        def __call__(self, *args: str, stdin: str | None = None):
            return self.server.kubectl(*args, stdin=stdin)

        def ok(self, *args: str, stdin: str | None = None) -> str:
            r = self(*args, stdin=stdin)
            assert r.returncode == 0, r.stderr
            return r.stdout

    path = tmp_path_factory.mktemp("admission") / "admission.yaml"
    path.write_text(ADMISSION_CONFIG)
    srv = ServerProcess(extra_args=["--admission-control-config-file", str(path), "--disable-scheduler"])
    srv.start(60)
    yield Kubectl(srv)
    srv.cleanup()


def test_a_configuration_file_sets_the_defaults_and_exemptions(configured):
    configured.ok("create", "namespace", "plain")
    configured.ok("create", "namespace", "exempt-me")
    r = configured("-n", "plain", "apply", "-f", "-", stdin=pod_json("priv", PRIVILEGED))
    assert r.returncode != 0
    assert ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": '
            'privileged (container "c" must not set securityContext.privileged=true)') in r.stderr
    # Baseline passes, restricted warns (the configured warn level).
    r = configured("-n", "plain", "apply", "-f", "-", stdin=pod_json("plain"))
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr)[0].startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation')
    # Exempt namespaces are never checked; a namespace's own labels still win elsewhere.
    r = configured("-n", "exempt-me", "apply", "-f", "-", stdin=pod_json("priv", PRIVILEGED))
    assert r.returncode == 0 and warnings(r.stderr) == [], r.stderr
    r = configured("-n", "kube-system", "create", "--dry-run=server", "-f", "-", stdin=pod_json("sys", PRIVILEGED))
    assert r.returncode == 0, r.stderr
    configured.ok("label", "namespace", "plain", "pod-security.kubernetes.io/enforce=privileged",
                  "pod-security.kubernetes.io/warn=privileged")
    r = configured("-n", "plain", "apply", "-f", "-", stdin=pod_json("priv", PRIVILEGED))
    assert r.returncode == 0 and warnings(r.stderr) == [], r.stderr


def test_a_bad_configuration_file_stops_the_server(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "admission.yaml"
    path.write_text(ADMISSION_CONFIG.replace("enforce: baseline", "enforce: strict"))
    r = subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "server", "--data-dir", str(tmp_path / "d"),
                        "--admission-control-config-file", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--admission-control-config-file" in r.stderr
    assert "PodSecurity: defaults: enforce: must be one of privileged, baseline, restricted" in r.stderr
