"""Security contexts as the agent turns them into CRI settings, and the node's own pod
admission (sysctls, AppArmor, supplementalGroupsPolicy, user namespaces), without a runtime."""

from __future__ import annotations

import pytest

from kybernetes.agent import admission, podspec, runtime, security
from kybernetes.agent.cri import runtime_pb2 as pb

ROOT = "/var/lib/kyb/seccomp"


def _pod(spec: dict | None = None, containers: list[dict] | None = None, **meta) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
            "spec": {"containers": containers or [{"name": "c", "image": "busybox"}], **(spec or {})}}


def _config(pod: dict, name: str = "c") -> pb.ContainerConfig:
    container = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    spec = podspec.container_spec(pod, container, [], 0, "h", seccomp_root=ROOT)
    return runtime.container_config(spec, bool(pod["spec"].get("hostNetwork")))


def _sandbox(pod: dict) -> pb.PodSandboxConfig:
    return runtime.sandbox_config(podspec.sandbox_spec(pod, "/logs", 0, ([], [], []), ROOT))


# -- container settings -------------------------------------------------------------------------


def test_allow_privilege_escalation_false_sets_no_new_privs_and_only_then():
    off = _pod(containers=[{"name": "c", "securityContext": {"allowPrivilegeEscalation": False}}])
    assert _config(off).linux.security_context.no_new_privs is True
    for sc in ({}, {"allowPrivilegeEscalation": True}):
        assert _config(_pod(containers=[{"name": "c", "securityContext": sc}])).linux.security_context.no_new_privs \
            is False


def test_pod_level_user_and_seccomp_are_defaults_a_container_overrides():
    pod = _pod({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000],
                                    "seccompProfile": {"type": "RuntimeDefault"}}},
               [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 2000,
                                                                   "seccompProfile": {"type": "Unconfined"}}}])
    a, b = _config(pod, "a").linux.security_context, _config(pod, "b").linux.security_context
    assert (a.run_as_user.value, a.run_as_group.value, list(a.supplemental_groups)) == (1000, 3000, [4000])
    assert (b.run_as_user.value, b.run_as_group.value) == (2000, 3000)
    assert a.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault
    assert b.seccomp.profile_type == pb.SecurityProfile.Unconfined
    assert _sandbox(pod).linux.security_context.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault


def test_no_seccomp_profile_is_sent_as_unconfined_explicitly():
    sc = _config(_pod()).linux.security_context
    assert sc.HasField("seccomp") and sc.seccomp.profile_type == pb.SecurityProfile.Unconfined


def test_localhost_seccomp_is_a_file_under_the_agents_directory_and_may_not_leave_it():
    pod = _pod(containers=[{"name": "c", "securityContext": {
        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}}])
    sc = _config(pod).linux.security_context
    assert sc.seccomp.profile_type == pb.SecurityProfile.Localhost
    assert sc.seccomp.localhost_ref == f"{ROOT}/profiles/audit.json"
    for bad in ("../etc/shadow", "/etc/seccomp.json", "a/../../b", ""):
        escaping = _pod(containers=[{"name": "c", "securityContext": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": bad}}}])
        with pytest.raises(security.SecurityContextError, match="must be a relative path inside"):
            security.check_container(escaping, escaping["spec"]["containers"][0], ROOT)


def test_capabilities_privileged_and_read_only_root_reach_the_runtime():
    pod = _pod(containers=[
        {"name": "c", "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                          "readOnlyRootFilesystem": True}},
        {"name": "p", "securityContext": {"privileged": True}}])
    c, p = _config(pod, "c").linux.security_context, _config(pod, "p").linux.security_context
    assert list(c.capabilities.add_capabilities) == ["NET_ADMIN"] and list(c.capabilities.drop_capabilities) == ["ALL"]
    assert c.readonly_rootfs and not c.privileged and "/proc/kcore" in c.masked_paths
    assert p.privileged and not p.masked_paths and not p.readonly_paths
    # The runtime refuses a privileged container in an unprivileged sandbox.
    assert _sandbox(pod).linux.security_context.privileged is True
    assert _sandbox(_pod()).linux.security_context.privileged is False


def test_proc_mount_unmasked_drops_masked_and_read_only_paths():
    pod = _pod({"hostUsers": False}, [{"name": "c", "securityContext": {"procMount": "Unmasked"}}])
    sc = _config(pod).linux.security_context
    assert not sc.masked_paths and not sc.readonly_paths


@pytest.mark.parametrize(("spec", "modes"), [
    ({}, (pb.POD, pb.CONTAINER, pb.POD)),
    ({"shareProcessNamespace": True}, (pb.POD, pb.POD, pb.POD)),
    ({"hostNetwork": True, "hostPID": True, "hostIPC": True}, (pb.NODE, pb.NODE, pb.NODE)),
    ({"hostPID": True, "shareProcessNamespace": False}, (pb.POD, pb.NODE, pb.POD)),
])
def test_host_and_shared_namespaces_for_sandbox_and_containers(spec, modes):
    pod = _pod(spec)
    for ns in (_config(pod).linux.security_context.namespace_options,
               _sandbox(pod).linux.security_context.namespace_options):
        assert (ns.network, ns.pid, ns.ipc) == modes


def test_sysctls_go_to_the_sandbox():
    pod = _pod({"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 2048"},
                                                {"name": "kernel.shm_rmid_forced", "value": "1"}]}})
    assert dict(_sandbox(pod).linux.sysctls) == {"net.ipv4.ip_local_port_range": "1024 2048",
                                                 "kernel.shm_rmid_forced": "1"}


# -- runAsNonRoot against the image ---------------------------------------------------------------


def _non_root(sc: dict | None = None, pod_sc: dict | None = None) -> tuple[dict, dict]:
    container = {"name": "app", "securityContext": sc or {}}
    return _pod({"securityContext": pod_sc or {}}, [container]), container


def test_run_as_non_root_refuses_an_image_running_as_root_with_the_kubelets_message():
    pod, c = _non_root(pod_sc={"runAsNonRoot": True})
    assert security.needs_image_user(pod, c)
    for uid, user in ((0, ""), (None, "")):  # an image naming no user runs as root
        with pytest.raises(security.SecurityContextError) as e:
            security.verify_run_as_non_root(pod, c, uid, user)
        assert str(e.value) == ('container has runAsNonRoot and image will run as root '
                                '(pod: "p_ns(u1)", container: app)')
    with pytest.raises(security.SecurityContextError) as e:
        security.verify_run_as_non_root(pod, c, None, "nobody")
    assert str(e.value) == ('container has runAsNonRoot and image has non-numeric user (nobody), cannot verify '
                            'user is non-root (pod: "p_ns(u1)", container: app)')
    security.verify_run_as_non_root(pod, c, 65534, "")


def test_run_as_non_root_trusts_run_as_user_without_looking_at_the_image():
    pod, c = _non_root({"runAsUser": 1000}, {"runAsNonRoot": True})
    assert not security.needs_image_user(pod, c)
    security.verify_run_as_non_root(pod, c, 0, "")
    pod, c = _non_root({"runAsUser": 0, "runAsNonRoot": True})
    with pytest.raises(security.SecurityContextError, match="container's runAsUser breaks non-root policy"):
        security.verify_run_as_non_root(pod, c, None, "")
    pod, c = _non_root({"runAsNonRoot": False}, {"runAsNonRoot": True})
    assert not security.needs_image_user(pod, c)
    security.verify_run_as_non_root(pod, c, 0, "")


# -- node admission ---------------------------------------------------------------------------------


def _sysctl_pod(*names: str, **spec) -> dict:
    return _pod({"securityContext": {"sysctls": [{"name": n, "value": "1"} for n in names]}, **spec})


NODE = admission.NodeFeatures()


def test_safe_sysctls_are_admitted_and_unsafe_ones_refused_with_upstreams_words():
    assert admission.admit(_sysctl_pod("kernel.shm_rmid_forced", "net.ipv4.tcp_keepalive_time",
                                       "net/ipv4/ip_local_port_range"), NODE) is None
    r = admission.admit(_sysctl_pod("kernel.msgmax"), NODE)
    assert r is not None and r.reason == "SysctlForbidden"
    assert r.message == 'forbidden sysctl: "kernel.msgmax" not allowlisted'
    assert r.status_message == 'Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted'


def test_allowed_unsafe_sysctls_by_name_or_prefix():
    node = admission.NodeFeatures(allowed_unsafe_sysctls=("kernel.msg*", "net.core.somaxconn"))
    assert admission.admit(_sysctl_pod("kernel.msgmax", "net.core.somaxconn"), node) is None
    assert admission.admit(_sysctl_pod("kernel.sem"), node).reason == "SysctlForbidden"


def test_host_namespaces_forbid_the_sysctls_they_would_set_on_the_host():
    r = admission.admit(_sysctl_pod("net.ipv4.ip_local_port_range", hostNetwork=True), NODE)
    assert r.message == 'forbidden sysctl: "net.ipv4.ip_local_port_range" not allowed with host net enabled'
    r = admission.admit(_sysctl_pod("kernel.shm_rmid_forced", hostIPC=True), NODE)
    assert r.message == 'forbidden sysctl: "kernel.shm_rmid_forced" not allowed with host ipc enabled'
    assert admission.admit(_sysctl_pod("kernel.shm_rmid_forced", hostNetwork=True), NODE) is None


def test_unsafe_sysctl_patterns_must_be_namespaced():
    assert admission.validate_allowed_unsafe_sysctls(("kernel.msg*", "net.*", "fs.mqueue.msg_max")) == []
    assert admission.validate_allowed_unsafe_sysctls(("vm.swappiness", "kernel.*")) == [
        'the sysctl "vm.swappiness" is not known to be namespaced', 'the sysctl "kernel.*" is not known to be namespaced']


def test_apparmor_profiles_need_apparmor_on_the_host():
    unconfined = _pod({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}})
    assert admission.admit(unconfined, NODE) is None
    for pod in (_pod({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
                _pod(containers=[{"name": "c", "securityContext": {
                    "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-deny"}}}]),
                _pod(annotations={"container.apparmor.security.beta.kubernetes.io/c": "localhost/k8s-deny"})):
        r = admission.admit(pod, NODE)
        assert (r.reason, r.message) == ("AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host")
        assert admission.admit(pod, admission.NodeFeatures(apparmor=True)) is None
    old_unconfined = _pod(annotations={"container.apparmor.security.beta.kubernetes.io/c": "unconfined"})
    assert admission.admit(old_unconfined, NODE) is None


def test_strict_supplemental_groups_and_user_namespaces_are_refused_by_this_runtime():
    r = admission.admit(_pod({"securityContext": {"supplementalGroupsPolicy": "Strict"}}), NODE)
    assert (r.reason, r.message) == ("SupplementalGroupsPolicyNotSupported",
                                     "SupplementalGroupsPolicy=Strict is not supported in this node")
    assert admission.admit(_pod({"securityContext": {"supplementalGroupsPolicy": "Merge"}}), NODE) is None
    r = admission.admit(_pod({"hostUsers": False}), NODE)
    assert (r.reason, r.message) == ("UserNamespacesNotSupported",
                                     'RuntimeClass handler "" does not support user namespaces')
    assert admission.admit(_pod({"hostUsers": True}), NODE) is None


# -- API validation ---------------------------------------------------------------------------------


def test_proc_mount_unmasked_needs_host_users_false_and_seccomp_types_are_checked():
    unmasked = [{"name": "c", "image": "i", "securityContext": {"procMount": "Unmasked"}}]
    errs = validate_pod_spec_errors({"containers": unmasked})
    assert errs == [("spec.containers[0].securityContext.procMount", "`hostUsers` must be false to use `Unmasked`")]
    assert validate_pod_spec_errors({"containers": unmasked, "hostUsers": False}) == []
    errs = validate_pod_spec_errors({"containers": [{"name": "c", "image": "i"}],
                                     "securityContext": {"seccompProfile": {"type": "Localhost"}}})
    assert errs == [("spec.securityContext.seccompProfile.localhostProfile",
                     "must be set when seccomp type is Localhost")]
    errs = validate_pod_spec_errors({"containers": [{"name": "c", "image": "i", "securityContext": {
        "seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "x.json"}}}]})
    assert errs == [("spec.containers[0].securityContext.seccompProfile.localhostProfile",
                     "can only be set when seccomp type is Localhost")]


def validate_pod_spec_errors(spec: dict) -> list[tuple[str, str]]:
    from kybernetes.api.validation import validate_pod_spec
    full = {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", **spec}
    return [(e.field, e.detail) for e in validate_pod_spec("spec", full) if "securityContext" in e.field]


def test_sysctl_names_are_validated_as_upstream():
    sysctls = [{"name": n, "value": "1"} for n in ("foo-", "kernel.shmmax", "safe-and-unsafe", "bar..",
                                                   "kernel.shmmax", "net/ipv4/ip_forward")]
    errs = validate_pod_spec_errors({"containers": [{"name": "c", "image": "i"}],
                                     "securityContext": {"sysctls": sysctls}})
    regex = r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
    assert errs == [("spec.securityContext.sysctls[0].name", f"must have at most 253 characters and match regex {regex}"),
                    ("spec.securityContext.sysctls[3].name", f"must have at most 253 characters and match regex {regex}"),
                    ("spec.securityContext.sysctls[4].name", "")]
    host = validate_pod_spec_errors({"containers": [{"name": "c", "image": "i"}], "hostNetwork": True, "hostIPC": True,
                                     "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                                     {"name": "kernel/shm_rmid_forced", "value": "1"}]}})
    assert host == [("spec.securityContext.sysctls[0].name", "may not be specified when 'hostNetwork' is true"),
                    ("spec.securityContext.sysctls[1].name", "may not be specified when 'hostIPC' is true")]


# -- the kubelet's general predicates and OS checks -----------------------------------------------

NODE_OBJ = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "disk": "ssd"}},
            "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoExecute"}]},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "3"}}}
TOLERATE = [{"key": "dedicated", "operator": "Exists"}]


def _sized(name: str, cpu: str = "", memory: str = "", **spec) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return _pod({"tolerations": TOLERATE, **spec},
                [{"name": "c", "image": "i", "resources": {"requests": requests}}], name=name)


def test_resources_are_checked_against_allocatable_and_the_pods_already_there():
    others = [_sized("a", cpu="1500m"), _sized("b", memory="512Mi")]
    assert admission.admit(_sized("p", cpu="500m", memory="512Mi"), NODE, NODE_OBJ, others) is None
    r = admission.admit(_sized("p", cpu="600m"), NODE, NODE_OBJ, others)
    assert (r.reason, r.message) == ("OutOfcpu", "Node didn't have enough resource: cpu, requested: 600, "
                                                 "used: 1500, capacity: 2000")
    assert r.status_message.startswith("Pod was rejected: Node didn't have enough resource: cpu")
    r = admission.admit(_sized("p", memory="600Mi"), NODE, NODE_OBJ, others)
    assert r.reason == "OutOfmemory" and "used: 536870912, capacity: 1073741824" in r.message
    r = admission.admit(_sized("p"), NODE, NODE_OBJ, [*others, _sized("c")])
    assert (r.reason, r.message) == ("OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 3, "
                                                  "capacity: 3")


def test_node_selector_affinity_host_ports_and_no_execute_taints():
    assert admission.admit(_sized("p", nodeSelector={"disk": "ssd"}), NODE, NODE_OBJ) is None
    r = admission.admit(_sized("p", nodeSelector={"disk": "hdd"}), NODE, NODE_OBJ)
    assert (r.reason, r.message) == ("NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's "
                                                     "node affinity/selector")
    web = _pod({"tolerations": TOLERATE}, [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}])
    other = _pod({}, [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]}])
    r = admission.admit(web, NODE, NODE_OBJ, [other])
    assert (r.reason, r.message) == ("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for "
                                                  "the requested pod ports")
    udp = _pod({}, [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}])
    assert admission.admit(web, NODE, NODE_OBJ, [udp]) is None
    r = admission.admit(_pod(), NODE, NODE_OBJ)
    assert (r.reason, r.message) == ("TaintToleration", "Predicate TaintToleration failed: node(s) had taints that "
                                                        "the pod didn't tolerate")


def test_a_pod_for_another_os_is_rejected():
    r = admission.admit(_pod({"os": {"name": "windows"}}), NODE)
    assert (r.reason, r.message) == ("PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS")
    r = admission.admit(_pod(labels={"kubernetes.io/os": "windows"}), NODE)
    assert r.reason == "PodOSSelectorNodeLabelDoesNotMatch"
    assert admission.admit(_pod({"os": {"name": "linux"}}, labels={"kubernetes.io/os": "linux"}), NODE) is None
