"""Pod spec fields found accepted and ignored in the field-by-field audit of issue 16, and
what they do now: alpha fields of a 1.35 server dropped on create (kept on an update of a
pod that has them), fields this cluster's nodes cannot honour refused with a reason,
upstream's checks of hostnameOverride, volumeDevices and probe-level grace periods, the
hostname the sandbox gets (hostnameOverride, setHostnameAsFQDN and the kernel's 64-character
limit), the probe's grace period when it kills, block devices refused on the node and
fsGroup ownership of local claims with fsGroupChangePolicy."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path

import pytest

from kybernetes.agent import etchosts, ownership, podspec
from kybernetes.agent.probes import LIVENESS, READINESS, STARTUP, kill_grace
from kybernetes.agent.volumes import VolumeError, VolumeManager, block_device_error
from kybernetes.api.podfields import drop_disabled_fields
from kybernetes.api.validation import validate_pod_spec


def _spec(**extra: object) -> dict:
    spec: dict = {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                  "containers": [{"name": "app", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                  "terminationMessagePolicy": "File"}]}
    spec.update(extra)
    return spec


def _errors(spec: dict) -> list[tuple[str, str]]:
    return [(e.field, e.message()) for e in validate_pod_spec("spec", spec)]


# -- disabled fields ---------------------------------------------------------------------------


def test_alpha_fields_are_dropped_on_create() -> None:
    spec = _spec(schedulingGroup={"podGroupName": "g"}, evictionResponders=[{"name": "r"}])
    spec["containers"][0]["lifecycle"] = {"stopSignal": "SIGUSR1"}
    spec["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/v", "bindMountOptions": ["noexec"]}]
    drop_disabled_fields(spec, None)
    assert "schedulingGroup" not in spec and "evictionResponders" not in spec
    assert "lifecycle" not in spec["containers"][0]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "v", "mountPath": "/v"}]


def test_a_stop_signal_next_to_a_hook_leaves_the_hook() -> None:
    spec = _spec()
    spec["containers"][0]["lifecycle"] = {"stopSignal": "SIGUSR1", "preStop": {"sleep": {"seconds": 1}}}
    drop_disabled_fields(spec)
    assert spec["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 1}}}


def test_an_update_keeps_a_disabled_field_the_stored_pod_uses() -> None:
    old = _spec()
    old["containers"][0]["lifecycle"] = {"stopSignal": "SIGUSR1"}
    new = copy.deepcopy(old)
    drop_disabled_fields(new, old)
    assert new["containers"][0]["lifecycle"] == {"stopSignal": "SIGUSR1"}


# -- refused fields ----------------------------------------------------------------------------


def test_pod_level_resources_are_refused_with_the_reason() -> None:
    errs = _errors(_spec(resources={"limits": {"cpu": "1"}}))
    assert errs == [("spec.resources", "Forbidden: pod-level resources are not supported by this cluster's nodes "
                                       "(the node agent keeps no pod-level cgroup to enforce them); set requests "
                                       "and limits per container")]
    assert _errors(_spec(resources={})) == []


def test_resource_claims_are_refused_in_the_pod_and_the_container() -> None:
    spec = _spec(resourceClaims=[{"name": "gpu", "resourceClaimName": "c"}])
    spec["containers"][0]["resources"] = {"claims": [{"name": "gpu"}]}
    fields = [f for f, _ in _errors(spec)]
    assert fields == ["spec.containers[0].resources.claims", "spec.resourceClaims"]
    assert "dynamic resource allocation is not supported" in _errors(spec)[0][1]


def test_per_container_restart_policies_are_refused() -> None:
    spec = _spec()
    spec["containers"][0]["restartPolicy"] = "Never"
    spec["containers"][0]["restartPolicyRules"] = [{"action": "Restart", "exitCodes": {"operator": "In",
                                                                                      "values": [42]}}]
    assert [f for f, _ in _errors(spec)] == ["spec.containers[0].restartPolicy",
                                             "spec.containers[0].restartPolicyRules"]
    assert "may not be set for non-init containers" in _errors(spec)[0][1]


def test_an_init_container_may_only_be_a_sidecar() -> None:
    spec = _spec(initContainers=[{"name": "s", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                  "terminationMessagePolicy": "File", "restartPolicy": "OnFailure"}])
    assert _errors(spec) == [("spec.initContainers[0].restartPolicy",
                              'Unsupported value: "OnFailure": supported values: "Always"')]
    spec["initContainers"][0]["restartPolicy"] = "Always"
    assert _errors(spec) == []


def test_volume_devices_are_checked_as_upstream() -> None:
    spec = _spec(volumes=[{"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
                          {"name": "scratch", "emptyDir": {}}])
    spec["containers"][0]["volumeDevices"] = [{"name": "claim", "devicePath": "/dev/xvda"}]
    assert _errors(spec) == []
    spec["containers"][0]["volumeDevices"] += [{"name": "scratch", "devicePath": "/dev/xvda"},
                                               {"name": "nope", "devicePath": "/dev/../x"}]
    assert _errors(spec) == [
        ("spec.containers[0].volumeDevices[1].name", 'Invalid value: "scratch": can only use volume source type '
                                                     "of PersistentVolumeClaim or Ephemeral for block mode"),
        ("spec.containers[0].volumeDevices[1].devicePath", 'Invalid value: "/dev/xvda": must be unique'),
        ("spec.containers[0].volumeDevices[2].name", 'Invalid value: "nope": must match the name of a '
                                                     "persistentVolumeClaim volume"),
        ("spec.containers[0].volumeDevices[2].devicePath", "Invalid value: \"/dev/../x\": can not contain "
                                                           "backsteps ('..')"),
    ]


def test_probe_grace_periods_are_checked() -> None:
    spec = _spec()
    spec["containers"][0]["livenessProbe"] = {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 0}
    spec["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 5}
    assert _errors(spec) == [
        ("spec.containers[0].livenessProbe.terminationGracePeriodSeconds", "Invalid value: 0: must be greater than 0"),
        ("spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
         "Invalid value: 5: must not be set for readinessProbes")]
    spec["containers"][0]["livenessProbe"]["terminationGracePeriodSeconds"] = 3
    del spec["containers"][0]["readinessProbe"]
    assert _errors(spec) == []


def test_hostname_override_is_checked() -> None:
    assert _errors(_spec(hostnameOverride="www.example.com")) == []
    long_name = "a" * 30 + "." + "b" * 34
    assert _errors(_spec(hostnameOverride=long_name)) == [
        ("spec.hostnameOverride", f'Invalid value: "{long_name}": must be no more than 64 characters')]
    assert [m for _, m in _errors(_spec(hostnameOverride="x", setHostnameAsFQDN=True, hostNetwork=True))] == [
        'Invalid value: "x": may not be set when setHostnameAsFQDN is true',
        'Invalid value: "x": may not be set when hostNetwork is true']
    assert _errors(_spec(hostnameOverride="Not_A_Name"))[0][0] == "spec.hostnameOverride"


# -- the agent ---------------------------------------------------------------------------------


def _pod(**spec: object) -> dict:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"}, "spec": dict(spec)}


def test_the_sandbox_hostname() -> None:
    assert podspec.pod_hostname(_pod()) == "web-0"
    assert podspec.pod_hostname(_pod(hostname="h", subdomain="s")) == "h"
    assert podspec.pod_hostname(_pod(hostname="h", subdomain="s", setHostnameAsFQDN=True),
                                "example.org") == "h.s.shop.svc.example.org"
    # Without a subdomain there is no domain to add.
    assert podspec.pod_hostname(_pod(hostname="h", setHostnameAsFQDN=True)) == "h"
    assert podspec.pod_hostname(_pod(hostname="h", subdomain="s", hostnameOverride="www.example.com")) \
        == "www.example.com"


def test_a_fqdn_longer_than_the_kernel_allows_fails_the_sandbox() -> None:
    name = podspec.pod_hostname(_pod(hostname="h" * 40, subdomain="s" * 20, setHostnameAsFQDN=True))
    podspec.check_hostname("h" * 64)
    with pytest.raises(podspec.HostnameError) as e:
        podspec.check_hostname(name)
    assert str(e.value) == (f"failed to construct FQDN from pod hostname and cluster domain, FQDN {name} is too "
                            f"long (64 characters is the max, {len(name)} characters requested)")


def test_etc_hosts_names_the_override() -> None:
    text = etchosts.hosts_content(_pod(hostname="h", subdomain="s", hostnameOverride="www.example.com"),
                                  ["10.0.0.5"], "cluster.local", "")
    assert "10.0.0.5\twww.example.com\n" in text


def test_a_probe_kills_with_its_own_grace_period() -> None:
    pod = _pod(terminationGracePeriodSeconds=60, containers=[
        {"name": "app", "livenessProbe": {"terminationGracePeriodSeconds": 2},
         "startupProbe": {"exec": {}}, "readinessProbe": {"terminationGracePeriodSeconds": 9}}])
    assert kill_grace(pod, "app", LIVENESS) == 2
    assert kill_grace(pod, "app", STARTUP) == 60
    assert kill_grace(pod, "app", READINESS) == 60
    assert kill_grace(_pod(containers=[{"name": "app"}]), "app", LIVENESS) == 30


def test_block_devices_are_refused_on_the_node() -> None:
    assert block_device_error(_pod(containers=[{"name": "app"}])) == ""
    pod = _pod(containers=[{"name": "app", "volumeDevices": [{"name": "claim", "devicePath": "/dev/xvda"}]}])
    assert block_device_error(pod) == ('MapVolume.MapPodDevice failed for volume "claim" : block volumes '
                                       "(volumeDevices of container app) are not supported by this node")


def test_wanted_modes() -> None:
    assert ownership.wanted_mode(0o600, False, False) == 0o660
    assert ownership.wanted_mode(0o700, True, False) == 0o770 | stat.S_ISGID
    assert ownership.wanted_mode(0o600, False, True) == 0o640
    assert ownership.root_matches(7, 0o2770 | stat.S_IFDIR, 7, False)
    assert not ownership.root_matches(7, 0o0770 | stat.S_IFDIR, 7, False)
    assert not ownership.root_matches(8, 0o2770 | stat.S_IFDIR, 7, False)


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("x")
    os.chmod(root / "sub" / "f", 0o600)
    os.chmod(root, 0o700)
    return root / "sub" / "f"


def test_ownership_change_walks_the_tree(tmp_path: Path) -> None:
    f = _tree(tmp_path / "vol")
    assert ownership.change_ownership(str(tmp_path / "vol"), 4321, "Always")
    st = os.stat(f)
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 0o660)
    assert stat.S_IMODE(os.stat(tmp_path / "vol" / "sub").st_mode) & stat.S_ISGID


def test_on_root_mismatch_skips_a_volume_whose_root_matches(tmp_path: Path) -> None:
    f = _tree(tmp_path / "vol")
    os.chown(tmp_path / "vol", -1, 4321)
    os.chmod(tmp_path / "vol", 0o2770)
    assert not ownership.change_ownership(str(tmp_path / "vol"), 4321, ownership.ON_ROOT_MISMATCH)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600  # not walked
    # The root differs: walked as with Always.
    os.chmod(tmp_path / "vol", 0o700)
    assert ownership.change_ownership(str(tmp_path / "vol"), 4321, ownership.ON_ROOT_MISMATCH)
    assert os.stat(f).st_gid == 4321


async def test_a_local_claim_goes_to_the_fs_group_once(tmp_path: Path) -> None:
    data = tmp_path / "pv"
    f = _tree(data)
    objects = {
        ("PersistentVolumeClaim", "shop", "c"): {"metadata": {"name": "c"}, "spec": {"volumeName": "pv"},
                                                 "status": {"phase": "Bound"}},
        ("PersistentVolume", "", "pv"): {"metadata": {"name": "pv"},
                                         "spec": {"local": {"path": str(data)}, "volumeMode": "Filesystem"}},
    }

    async def fetch(kind: str, ns: str, name: str) -> dict | None:
        return objects.get((kind, ns, name))

    manager = VolumeManager(str(tmp_path / "pods"), fetch, {})
    pod = _pod(securityContext={"fsGroup": 4321}, volumes=[{"name": "data", "persistentVolumeClaim": {
        "claimName": "c"}}], containers=[{"name": "app"}])
    await manager.setup(pod)
    assert os.stat(f).st_gid == 4321
    os.chown(f, -1, 0)
    await manager.setup(pod)  # a later sync does not walk again
    assert os.stat(f).st_gid == 0
    with pytest.raises(VolumeError, match="block volumes"):
        await manager.setup(_pod(containers=[{"name": "app", "volumeDevices": [{"name": "data",
                                                                                "devicePath": "/dev/x"}]}]))


def test_mount_propagation_and_recursive_read_only_are_checked() -> None:
    spec = _spec(volumes=[{"name": "v", "hostPath": {"path": "/mnt"}}])
    spec["containers"][0]["volumeMounts"] = [
        {"name": "v", "mountPath": "/a", "mountPropagation": "Bidirectional"},
        {"name": "v", "mountPath": "/b", "mountPropagation": "Sideways"},
        {"name": "v", "mountPath": "/c", "recursiveReadOnly": "Enabled", "mountPropagation": "HostToContainer"}]
    assert _errors(spec) == [
        ("spec.containers[0].volumeMounts[0].mountPropagation",
         "Forbidden: Bidirectional mount propagation is available only to privileged containers"),
        ("spec.containers[0].volumeMounts[1].mountPropagation",
         'Unsupported value: "Sideways": supported values: "Bidirectional", "HostToContainer", "None"'),
        ("spec.containers[0].volumeMounts[2].recursiveReadOnly", "Forbidden: may only be specified when readOnly "
                                                                 "is true"),
        ("spec.containers[0].volumeMounts[2].recursiveReadOnly", "Forbidden: may only be specified when "
                                                                 "mountPropagation is None or not specified")]
    spec["containers"][0]["securityContext"] = {"privileged": True}
    spec["containers"][0]["volumeMounts"] = spec["containers"][0]["volumeMounts"][:1] + [
        {"name": "v", "mountPath": "/c", "recursiveReadOnly": "IfPossible", "readOnly": True}]
    assert _errors(spec) == []


def test_mount_propagation_reaches_the_runtime() -> None:
    from kybernetes.agent import runtime

    container = {"name": "c", "image": "busybox", "volumeMounts": [
        {"name": "v", "mountPath": "/a", "mountPropagation": "HostToContainer"},
        {"name": "v", "mountPath": "/b", "mountPropagation": "Bidirectional"}, {"name": "v", "mountPath": "/c"}]}
    pod = _pod(containers=[container])
    spec = podspec.container_spec(pod, container, [], 0, "h", mounts=[("/a", "/h", False), ("/b", "/h", False),
                                                                      ("/c", "/h", False)])
    config = runtime.container_config(spec, False)
    assert [m.propagation for m in config.mounts] == [1, 2, 0]


def test_recursive_read_only_enabled_is_refused_if_possible_falls_back(tmp_path: Path) -> None:
    from kybernetes.agent.volumes import container_mounts

    container = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/a", "readOnly": True,
                                                "recursiveReadOnly": "IfPossible"}]}
    (mount,) = container_mounts(container, {"v": str(tmp_path)})
    assert mount.readonly
    container["volumeMounts"][0]["recursiveReadOnly"] = "Enabled"
    with pytest.raises(VolumeError, match="recursive read-only mounts are not supported"):
        container_mounts(container, {"v": str(tmp_path)})


def test_lifecycle_handlers_are_checked() -> None:
    spec = _spec(terminationGracePeriodSeconds=2)
    spec["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}},
                                          "postStart": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}}}
    assert _errors(spec) == [
        ("spec.containers[0].lifecycle.postStart.sleep", "Forbidden: may not specify more than 1 handler type"),
        ("spec.containers[0].lifecycle.preStop.sleep",
         "Invalid value: 5: must be non-negative and less than terminationGracePeriodSeconds (2)")]
    spec["containers"][0]["lifecycle"] = {"preStop": {}, "postStart": {"tcpSocket": {"port": 80}}}
    assert _errors(spec) == [("spec.containers[0].lifecycle.preStop", "Required value: must specify a handler type")]


async def test_a_tcp_socket_hook_fails_on_the_node() -> None:
    from kybernetes.agent.probes import run_hook

    async def never(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        raise AssertionError("not an exec hook")

    why = await run_hook({"tcpSocket": {"port": 80}}, {"name": "c"}, "10.0.0.1", never, None, 1.0)  # type: ignore[arg-type]
    assert why == "Cannot run handler: invalid handler: tcpSocket is not supported as a lifecycle handler"
    assert await run_hook({"sleep": {"seconds": 0}}, {"name": "c"}, "10.0.0.1", never, None, 1.0) == ""  # type: ignore[arg-type]


def test_workload_templates_drop_alpha_fields_too() -> None:
    from kybernetes.api.defaults import default_template

    spec = {"template": {"spec": _spec()}}
    spec["template"]["spec"]["containers"][0]["lifecycle"] = {"stopSignal": "SIGTERM"}
    default_template(spec)
    assert "lifecycle" not in spec["template"]["spec"]["containers"][0]
