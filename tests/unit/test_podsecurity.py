"""The Pod Security Standards (kybernetes/api/podsecurity.py), worded as upstream's pod-security-admission."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api import podsecurity as ps

Obj = dict[str, Any]

RESTRICTED = ps.LevelVersion(ps.RESTRICTED)
BASELINE = ps.LevelVersion(ps.BASELINE)


def c(name: str = "c", **sc: Any) -> Obj:
    out: Obj = {"name": name, "image": "busybox"}
    if sc:
        out["securityContext"] = sc
    return out


def good(name: str = "c", **extra: Any) -> Obj:
    """A container that passes restricted."""
    sc: Obj = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
               "seccompProfile": {"type": "RuntimeDefault"}}
    return c(name, **(sc | extra))


def detail(level: ps.LevelVersion, spec: Obj, meta: Obj | None = None) -> str:
    return ps.forbidden_detail(ps.evaluate(level, meta or {}, spec))


# -- labels --------------------------------------------------------------------------------

def test_no_labels_is_privileged_everywhere() -> None:
    policy, errs = ps.policy_from_labels({})
    assert errs == [] and policy.privileged()
    assert str(policy.enforce) == "privileged:latest"


def test_levels_and_versions_from_labels() -> None:
    policy, errs = ps.policy_from_labels({
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.24",
        "pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest"})
    assert errs == []
    assert (str(policy.enforce), str(policy.audit), str(policy.warn)) == (
        "baseline:v1.24", "restricted:latest", "restricted:latest")


def test_warn_follows_a_stricter_enforce_unless_labelled() -> None:
    policy, _ = ps.policy_from_labels({"pod-security.kubernetes.io/enforce": "restricted",
                                       "pod-security.kubernetes.io/enforce-version": "v1.30"})
    assert str(policy.warn) == "restricted:v1.30"
    policy, _ = ps.policy_from_labels({"pod-security.kubernetes.io/enforce": "restricted",
                                       "pod-security.kubernetes.io/warn": "privileged"})
    assert str(policy.warn) == "privileged:latest"


def test_bad_labels_are_named_as_upstream_names_them() -> None:
    _, errs = ps.policy_from_labels({"pod-security.kubernetes.io/enforce": "strict",
                                     "pod-security.kubernetes.io/warn-version": "1.25"})
    assert [f"{e.field}: {e.message()}" for e in errs] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.25": '
        'must be "latest" or "v1.x"']


def test_a_newer_version_than_known_is_evaluated_as_latest() -> None:
    assert ps.LevelVersion(ps.RESTRICTED, 99).effective_minor() == ps.LATEST_MINOR
    assert str(ps.LevelVersion(ps.RESTRICTED, 99)) == "restricted:v1.99"


# -- restricted ----------------------------------------------------------------------------

def test_privileged_level_passes_anything() -> None:
    assert ps.evaluate(ps.LevelVersion(), {}, {"hostNetwork": True, "containers": [c(privileged=True)]}) == []


def test_a_plain_pod_breaks_four_restricted_rules_in_upstream_order() -> None:
    spec = {"containers": [c("c")]}
    assert ps.enforce_message(RESTRICTED, ps.evaluate(RESTRICTED, {}, spec)) == (
        'violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")')
    assert ps.evaluate(BASELINE, {}, spec) == []


def test_a_compliant_pod_passes_restricted() -> None:
    assert ps.evaluate(RESTRICTED, {}, {"containers": [good("a"), good("b", capabilities={
        "drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})]}) == []
    # pod-level runAsNonRoot and seccompProfile cover the containers
    spec = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Localhost",
                                                                         "localhostProfile": "p.json"}},
            "containers": [c(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]})]}
    assert ps.evaluate(RESTRICTED, {}, spec) == []


def test_a_privileged_pod_lists_every_violation() -> None:
    spec = {"hostNetwork": True, "hostPID": True,
            "containers": [c("c", privileged=True, runAsUser=0, capabilities={"add": ["SYS_ADMIN", "NET_ADMIN"]})],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
    assert detail(RESTRICTED, spec) == (
        "host namespaces (hostNetwork=true, hostPID=true), "
        'privileged (container "c" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]; '
        'container "c" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add), '
        'restricted volume types (volume "root" uses restricted volume type "hostPath"), '
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        'runAsUser=0 (container "c" must not set runAsUser=0), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")')
    assert detail(BASELINE, spec) == (
        "host namespaces (hostNetwork=true, hostPID=true), "
        'privileged (container "c" must not set securityContext.privileged=true), '
        'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in '
        "securityContext.capabilities.add), "
        'hostPath volumes (volume "root")')


def test_containers_are_named_together_and_init_containers_first() -> None:
    spec = {"initContainers": [c("init")], "containers": [c("a"), c("b")]}
    results = dict(ps.evaluate(RESTRICTED, {}, spec))
    assert results["allowPrivilegeEscalation != false"] == (
        'containers "init", "a", "b" must set securityContext.allowPrivilegeEscalation=false')


def test_explicit_false_settings_are_worded_apart() -> None:
    spec = {"securityContext": {"runAsNonRoot": False, "seccompProfile": {"type": "Unconfined"}},
            "containers": [good("a", runAsNonRoot=False, seccompProfile={"type": "Unconfined"})]}
    results = dict(ps.evaluate(RESTRICTED, {}, spec))
    assert results["runAsNonRoot != true"] == (
        'pod and container "a" must not set securityContext.runAsNonRoot=false')
    assert results["seccompProfile"] == (
        'pod and container "a" must not set securityContext.seccompProfile.type to "Unconfined"')
    assert dict(ps.evaluate(BASELINE, {}, spec))["seccompProfile"] == (
        'pod and container "a" must not set securityContext.seccompProfile.type to "Unconfined"')


def test_run_as_user_zero_at_pod_level() -> None:
    spec = {"securityContext": {"runAsUser": 0}, "containers": [good()]}
    assert detail(RESTRICTED, spec) == "runAsUser=0 (pod must not set runAsUser=0)"
    assert ps.evaluate(ps.LevelVersion(ps.RESTRICTED, 22), {}, spec) == []


@pytest.mark.parametrize(("volume", "ok"), [
    ({"name": "v", "emptyDir": {}}, True), ({"name": "v", "configMap": {"name": "x"}}, True),
    ({"name": "v", "secret": {"secretName": "x"}}, True), ({"name": "v", "projected": {"sources": []}}, True),
    ({"name": "v", "persistentVolumeClaim": {"claimName": "x"}}, True), ({"name": "v", "downwardAPI": {}}, True),
    ({"name": "v", "csi": {"driver": "d"}}, True), ({"name": "v", "ephemeral": {}}, True),
    ({"name": "v", "nfs": {"server": "s", "path": "/"}}, False), ({"name": "v", "gitRepo": {"repository": "r"}}, False),
])
def test_restricted_volume_types(volume: Obj, ok: bool) -> None:
    results = dict(ps.evaluate(RESTRICTED, {}, {"containers": [good()], "volumes": [volume]}))
    if ok:
        assert results == {}
    else:
        kind = next(k for k in volume if k != "name")
        assert results == {"restricted volume types": f'volume "v" uses restricted volume type "{kind}"'}


def test_capabilities_added_beyond_net_bind_service() -> None:
    spec = {"containers": [good("a", capabilities={"drop": ["ALL"], "add": ["CHOWN"]})]}
    assert detail(RESTRICTED, spec) == (
        'unrestricted capabilities (container "a" must not include "CHOWN" in securityContext.capabilities.add)')
    assert detail(BASELINE, spec) == ""


def test_windows_pods_skip_the_linux_only_restricted_rules() -> None:
    spec = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}, "containers": [c("w")]}
    assert ps.evaluate(RESTRICTED, {}, spec) == []


# -- baseline ------------------------------------------------------------------------------

def test_host_ports_and_plural_words() -> None:
    spec = {"containers": [c("a") | {"ports": [{"containerPort": 80, "hostPort": 80}]},
                           c("b") | {"ports": [{"containerPort": 81, "hostPort": 8081}]}]}
    assert detail(BASELINE, spec) == 'hostPort (containers "a", "b" use hostPorts 80, 8081)'
    spec = {"containers": [c("a") | {"ports": [{"containerPort": 80, "hostPort": 80}]}]}
    assert detail(BASELINE, spec) == 'hostPort (container "a" uses hostPort 80)'


def test_sysctls_by_version() -> None:
    spec = {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "1"},
                                            {"name": "kernel.msgmax", "value": "1"}]}, "containers": [c()]}
    assert detail(BASELINE, spec) == "forbidden sysctls (kernel.msgmax)"
    assert detail(ps.LevelVersion(ps.BASELINE, 28), spec) == (
        "forbidden sysctls (net.ipv4.tcp_keepalive_time, kernel.msgmax)")


def test_selinux_proc_mount_host_process_and_apparmor() -> None:
    spec = {"securityContext": {"seLinuxOptions": {"type": "spc_t"}, "windowsOptions": {"hostProcess": True}},
            "containers": [c("a", procMount="Unmasked", appArmorProfile={"type": "Unconfined"})]}
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/a": "unconfined"}}
    assert dict(ps.evaluate(BASELINE, meta, spec)) == {
        "forbidden AppArmor profiles": 'container "a" and annotation must not set AppArmor profile type to '
                                       '"Unconfined", "container.apparmor.security.beta.kubernetes.io/a="unconfined""',
        "procMount": 'container "a" must not set securityContext.procMount to "Unmasked"',
        "seLinuxOptions": 'pod set forbidden securityContext.seLinuxOptions: type "spc_t"',
        "hostProcess": "pod must not set securityContext.windowsOptions.hostProcess=true",
    }


def test_selinux_user_and_role() -> None:
    spec = {"containers": [c("a", seLinuxOptions={"type": "bad_t", "user": "u", "role": "r"})]}
    assert detail(BASELINE, spec) == ('seLinuxOptions (container "a" set forbidden securityContext.seLinuxOptions: '
                                      'type "bad_t"; user may not be set; role may not be set)')
    ok = {"containers": [c("a", seLinuxOptions={"type": "container_engine_t", "level": "s0:c1"})]}
    assert ps.evaluate(BASELINE, {}, ok) == []
    assert ps.evaluate(ps.LevelVersion(ps.BASELINE, 30), {}, ok) != []


def test_probe_hosts_from_1_34() -> None:
    spec = {"containers": [c("a") | {"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]}
    assert detail(BASELINE, spec) == (
        'probe or lifecycle host (container "a" uses probe or lifecycle host "10.0.0.1")')
    assert ps.evaluate(ps.LevelVersion(ps.BASELINE, 33), {}, spec) == []


def test_old_versions_check_seccomp_annotations() -> None:
    meta = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    assert detail(ps.LevelVersion(ps.BASELINE, 18), {"containers": [c()]}, meta) == (
        'seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")')


def test_ephemeral_containers_are_checked() -> None:
    spec = {"containers": [good()], "ephemeralContainers": [c("debugger", privileged=True)]}
    assert dict(ps.evaluate(BASELINE, {}, spec)) == {
        "privileged": 'container "debugger" must not set securityContext.privileged=true'}


# -- templates, updates, namespaces --------------------------------------------------------

def test_pod_templates_of_workloads() -> None:
    dep = {"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [c()]}}}}
    assert ps.pod_template("apps", "deployments", dep) == ({"labels": {"a": "b"}}, {"containers": [c()]})
    cron = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c("x")]}}}}}}
    assert ps.pod_template("batch", "cronjobs", cron) == ({}, {"containers": [c("x")]})
    assert ps.holds_template("", "podtemplates") and not ps.holds_template("", "configmaps")
    assert ps.pod_template("", "services", {}) is None


def test_significant_pod_updates() -> None:
    old = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [c()]}}
    relabelled = {"metadata": {"labels": {"a": "2"}}, "spec": {"containers": [c()]}}
    assert not ps.significant_pod_update(relabelled, old)
    new_image = {"metadata": {}, "spec": {"containers": [c() | {"image": "nginx"}]}}
    assert ps.significant_pod_update(new_image, old)
    debug = {"metadata": {}, "spec": {"containers": [c()], "ephemeralContainers": [c("d")]}}
    assert ps.significant_pod_update(debug, old)


def test_namespace_warnings_group_pods_by_violation() -> None:
    def pod(name: str, spec: Obj) -> Obj:
        return {"metadata": {"name": name}, "spec": spec}
    pods = [pod("web-2", {"containers": [c()]}), pod("web-1", {"containers": [c()]}),
            pod("web-3", {"containers": [c()]}), pod("db", {"hostNetwork": True, "containers": [good()]}),
            pod("ok", {"containers": [good()]})]
    assert ps.namespace_pod_warnings("team", RESTRICTED, pods) == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level "restricted:latest"',
        "db: host namespaces",
        "web-1 (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile"]
    assert ps.namespace_pod_warnings("team", RESTRICTED, pods[4:]) == []
    assert ps.namespace_pod_warnings("team", RESTRICTED, pods[:2], limit=1)[0] == (
        "new PodSecurity enforce level only checked against the first 1 of 2 existing pods")


def test_configuration_file() -> None:
    cfg = ps.parse_config({"apiVersion": "pod-security.admission.config.k8s.io/v1",
                           "kind": "PodSecurityConfiguration",
                           "defaults": {"enforce": "baseline", "enforce-version": "latest", "warn": "restricted"},
                           "exemptions": {"usernames": ["admin"], "namespaces": ["kube-system"],
                                          "runtimeClasses": []}})
    assert str(cfg.defaults.enforce) == "baseline:latest" and str(cfg.defaults.warn) == "restricted:latest"
    assert cfg.exempt_usernames == {"admin"} and cfg.exempt_namespaces == {"kube-system"}
    with pytest.raises(ValueError, match="must be one of privileged, baseline, restricted"):
        ps.parse_config({"apiVersion": "pod-security.admission.config.k8s.io/v1",
                         "kind": "PodSecurityConfiguration", "defaults": {"enforce": "strict"}})
    with pytest.raises(ValueError, match="PodSecurityConfiguration"):
        ps.parse_config({"apiVersion": "v1", "kind": "ConfigMap"})
