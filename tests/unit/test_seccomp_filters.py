"""Seccomp filters crun compiled once, handed to later containers with the same profile:
which containers share one, what is learned from crun's state and the container's spec,
and a container given a filter not made from its own profile."""

import base64
import json
import tomllib

from kybernetes.agent.containerd import ContainerdLayout, containerd_config, crun_handlers
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.seccompfilters import (
    ANNOTATION,
    DIGEST_ANNOTATION,
    SeccompFilters,
    filter_key,
    sandbox_filter_key,
    seccomp_digest,
)

PROFILE = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
# Two BPF instructions, as crun writes them.
BPF = bytes(range(16))


def _config(profile: int = pb.SecurityProfile.RuntimeDefault, add=(), drop=("ALL",), privileged=False,
            localhost="") -> pb.ContainerConfig:
    return pb.ContainerConfig(linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
        privileged=privileged, capabilities=pb.Capability(add_capabilities=list(add), drop_capabilities=list(drop)),
        seccomp=pb.SecurityProfile(profile_type=profile, localhost_ref=localhost))))


def _sandbox_config(profile: int = pb.SecurityProfile.RuntimeDefault, privileged=False) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
        privileged=privileged, seccomp=pb.SecurityProfile(profile_type=profile))))


def _container(tmp_path, cid: str, profile: dict | None, bpf: bytes | None = BPF, annotations=None) -> None:
    """What containerd and crun leave for a started container: its bundle's OCI spec (with
    the OCI annotations containerd passed through) and crun's compiled filter."""
    bundle = tmp_path / "tasks" / cid
    bundle.mkdir(parents=True)
    linux = {"seccomp": profile} if profile is not None else {}
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "linux": linux,
                                                    "annotations": annotations or {}}))
    if bpf is not None:
        state = tmp_path / "crun" / cid
        state.mkdir(parents=True)
        (state / "seccomp.bpf").write_bytes(bpf)


def _start(filters: SeccompFilters, tmp_path, cid: str, config: pb.ContainerConfig | pb.PodSandboxConfig, profile: dict = PROFILE,
           bpf: bytes | None = BPF) -> bool:
    """A container created from `config` and started; what its check says."""
    filters.created(cid, config, "")
    _container(tmp_path, cid, profile, bpf)
    return filters.check(cid)


def _filters(tmp_path, handlers=("", "crun")) -> SeccompFilters:
    return SeccompFilters(str(tmp_path / "crun"), str(tmp_path / "tasks"), frozenset(handlers))


def test_containers_share_a_filter_only_when_containerd_makes_the_same_profile_for_them():
    # containerd's RuntimeDefault profile follows the capabilities, in any order.
    assert filter_key(_config(add=["NET_ADMIN", "CHOWN"])) == filter_key(_config(add=["CHOWN", "NET_ADMIN"]))
    assert filter_key(_config()) != filter_key(_config(add=["SYS_ADMIN"]))
    assert filter_key(_config(drop=())) != filter_key(_config())
    # Any other profile is left to crun: a Localhost file may change, Unconfined has none,
    # and a privileged container runs unconfined.
    assert filter_key(_config(pb.SecurityProfile.Localhost, localhost="/p.json")) is None
    assert filter_key(_config(pb.SecurityProfile.Unconfined)) is None
    assert filter_key(_config(privileged=True)) is None


def test_digest_of_the_seccomp_section():
    assert seccomp_digest({"linux": {"seccomp": PROFILE}}) == seccomp_digest(
        {"linux": {"seccomp": json.loads(json.dumps(PROFILE, sort_keys=True))}, "process": {"args": ["x"]}})
    assert seccomp_digest({"linux": {"seccomp": {**PROFILE, "defaultAction": "SCMP_ACT_KILL"}}}) != seccomp_digest(
        {"linux": {"seccomp": PROFILE}})
    assert seccomp_digest({"linux": {}}) == seccomp_digest({}) == ""


def test_the_first_container_teaches_the_filter_the_next_is_given_it(tmp_path):
    filters = _filters(tmp_path)
    first = _config()
    filters.annotate(first, "")
    assert ANNOTATION not in first.annotations  # nothing learned yet: crun compiles
    filters.created("c1", first, "")
    _container(tmp_path, "c1", PROFILE)
    assert filters.check("c1") is True

    second = _config()
    filters.annotate(second, "")
    assert base64.b64decode(second.annotations[ANNOTATION]) == BPF
    filters.created("c2", second, "")
    _container(tmp_path, "c2", PROFILE, bpf=None)
    assert filters.check("c2") is True
    # Other capabilities, another profile: not given this one.
    other = _config(add=["SYS_ADMIN"])
    filters.annotate(other, "")
    assert ANNOTATION not in other.annotations


def test_a_container_given_a_filter_of_another_profile_fails_the_check_and_ends_the_handing_out(tmp_path):
    filters = _filters(tmp_path)
    _start(filters, tmp_path, "c1", _config())
    given = _config()
    filters.annotate(given, "")
    assert ANNOTATION in given.annotations
    also = _config()
    filters.annotate(also, "")
    # containerd made another profile for it than the filter came from (say, a new containerd).
    assert _start(filters, tmp_path, "c2", given, {**PROFILE, "syscalls": []}, bpf=None) is False
    assert not _given(filters, "")
    # Given the same filter before that: still checked, and fine when its profile is the filter's.
    assert _start(filters, tmp_path, "c3", also, bpf=None) is True
    assert _start(filters, tmp_path, "c4", also, {**PROFILE, "syscalls": []}, bpf=None) is False


def test_a_filter_forgotten_between_the_create_and_the_check_is_still_checked_by_its_digest(tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setattr("kybernetes.agent.seccompfilters.MAX_FILTERS", 1)
    filters = _filters(tmp_path)
    _start(filters, tmp_path, "c1", _config())
    given = _config()
    filters.annotate(given, "")
    assert given.annotations[DIGEST_ANNOTATION] == seccomp_digest({"linux": {"seccomp": PROFILE}})
    filters.created("c2", given, "")
    assert filters.to_check("c2")
    # Meanwhile another capability set pushed the filter out.
    _start(filters, tmp_path, "o1", _config(add=["KILL"]), {**PROFILE, "comment": "kill"})
    assert not _given(filters, "")
    _container(tmp_path, "c2", PROFILE, bpf=None)
    assert filters.check("c2") is True


def test_nothing_is_learned_or_given_off_crun_or_without_crun_output(tmp_path):
    filters = _filters(tmp_path, handlers=("crun",))
    # The pod runs on runc (the default here): crun's state has nothing of it.
    filters.created("r1", _config(), "")
    _container(tmp_path, "r1", PROFILE, bpf=None)
    assert filters.check("r1") is True
    given = _config()
    filters.annotate(given, "")
    assert ANNOTATION not in given.annotations
    # A container gone before its check, a torn filter file: nothing learned.
    filters.created("gone", _config(), "crun")
    assert filters.check("gone") is True
    filters.created("torn", _config(), "crun")
    _container(tmp_path, "torn", PROFILE, bpf=b"\x00" * 5)
    assert filters.check("torn") is True
    given = _config()
    filters.annotate(given, "crun")
    assert ANNOTATION not in given.annotations
    # Not noted (never created, or forgotten after a failed start): nothing to check.
    filters.created("failed", _config(), "crun")
    filters.forget("failed")
    assert not filters.to_check("failed")
    _container(tmp_path, "failed", PROFILE)
    assert filters.check("failed") is True
    filters.annotate(given, "crun")
    assert ANNOTATION not in given.annotations
    # An agent on a containerd not its own knows no crun state dir: off altogether.
    assert SeccompFilters("", str(tmp_path / "tasks"), frozenset({""})).enabled is False


def test_containerd_lets_the_annotation_through_for_crun_only():
    layout = ContainerdLayout("/var/lib/kyb/containerd")
    config = tomllib.loads(containerd_config(layout, "/usr/lib/cni", crun="/usr/bin/crun", default_runtime="crun"))
    runtimes = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes["crun"]["container_annotations"] == runtimes["crun"]["pod_annotations"] == [ANNOTATION]
    assert "container_annotations" not in runtimes["runc"] and "pod_annotations" not in runtimes["runc"]
    # crun's state for Kubernetes' namespace, where its seccomp.bpf files are.
    assert layout.crun_dir == runtimes["crun"]["options"]["Root"] + "/k8s.io"
    assert crun_handlers("/usr/bin/crun", "crun") == ("crun", "crun-nohostport", "")
    assert crun_handlers("/usr/bin/crun", "runc") == ("crun", "crun-nohostport")
    assert crun_handlers("", "runc") == ()


def test_filters_kept_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("kybernetes.agent.seccompfilters.MAX_FILTERS", 2)
    filters = _filters(tmp_path)
    for i, cap in enumerate(("CHOWN", "KILL", "SETUID")):
        filters.created(f"c{i}", _config(add=[cap]), "")
        _container(tmp_path, f"c{i}", {**PROFILE, "comment": cap})
        filters.check(f"c{i}")
    assert [_given(filters, cap) for cap in ("CHOWN", "KILL", "SETUID")] == [False, True, True]  # the oldest went


def _given(filters: SeccompFilters, cap: str) -> bool:
    config = _config(add=[cap] if cap else [])
    filters.annotate(config, "")
    return ANNOTATION in config.annotations


def test_sandboxes_share_one_filter_given_only_to_the_config_that_runs_the_sandbox(tmp_path):
    # The pause container has containerd's own capabilities: one profile for every
    # RuntimeDefault sandbox, none learned for any other.
    assert sandbox_filter_key(_sandbox_config()) == sandbox_filter_key(_sandbox_config())
    assert sandbox_filter_key(_sandbox_config(pb.SecurityProfile.Unconfined)) is None
    assert sandbox_filter_key(_sandbox_config(privileged=True)) is None
    assert sandbox_filter_key(_sandbox_config()) != filter_key(_config())

    filters = _filters(tmp_path)
    first = _sandbox_config()
    assert filters.annotate_sandbox(first, "") is first  # nothing learned yet: crun compiles
    filters.created("s1", first, "")
    assert filters.teaches("s1")
    _container(tmp_path, "s1", PROFILE)
    assert filters.check("s1") is True
    # A container is never given the sandbox's filter: its own profile differs.
    container = _config()
    filters.annotate(container, "")
    assert ANNOTATION not in container.annotations

    sandbox = _sandbox_config()
    given = filters.annotate_sandbox(sandbox, "")
    assert base64.b64decode(given.annotations[ANNOTATION]) == BPF
    filters.created("s1b", _sandbox_config(), "")
    assert not filters.teaches("s1b")  # learned already: only checked
    # A copy: the config the pod's containers are created with has no filter to pass on.
    assert ANNOTATION not in sandbox.annotations
    assert filters.annotate_sandbox(_sandbox_config(pb.SecurityProfile.Unconfined), "").annotations == {}
    filters.created("s2", given, "")
    _container(tmp_path, "s2", PROFILE, bpf=None, annotations={ANNOTATION: given.annotations[ANNOTATION]})
    assert filters.check("s2") is True
    # One whose pause container had another profile made for it fails its check.
    again = filters.annotate_sandbox(_sandbox_config(), "")
    filters.created("s3", again, "")
    _container(tmp_path, "s3", {**PROFILE, "syscalls": []}, bpf=None)
    assert filters.check("s3") is False
    assert filters.annotate_sandbox(_sandbox_config(), "").annotations == {}


def test_a_container_running_with_a_filter_it_was_not_given_fails_its_check(tmp_path):
    # As if containerd passed the sandbox's annotation on to the pod's containers: an
    # Unconfined container would run confined by the pause container's filter.
    filters = _filters(tmp_path)
    _start(filters, tmp_path, "s1", _sandbox_config())
    open_config = _config(pb.SecurityProfile.Unconfined)
    filters.created("open", open_config, "")
    assert filters.to_check("open") and not filters.teaches("open")
    _container(tmp_path, "open", None, bpf=None, annotations={ANNOTATION: base64.b64encode(BPF).decode()})
    assert filters.check("open") is False
    assert not _given(filters, "")
    # Without one it is fine (and teaches nothing).
    filters = _filters(tmp_path / "again")
    filters.created("open", open_config, "")
    _container(tmp_path / "again", "open", None, bpf=None)
    assert filters.check("open") is True
