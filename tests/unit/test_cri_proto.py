"""Wire compatibility of the generated CRI v1 code: field numbers and method paths must be
those of upstream k8s.io/cri-api runtime/v1, or a real runtime misreads every message."""

from __future__ import annotations

import grpc
import pytest

from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri import runtime_pb2_grpc as pb_grpc

# message -> {field: upstream number}
UPSTREAM_NUMBERS: dict[str, dict[str, int]] = {
    "VersionResponse": {"version": 1, "runtime_name": 2, "runtime_version": 3, "runtime_api_version": 4},
    "RunPodSandboxRequest": {"config": 1, "runtime_handler": 2},
    "PodSandboxConfig": {"metadata": 1, "hostname": 2, "log_directory": 3, "dns_config": 4,
                         "port_mappings": 5, "labels": 6, "annotations": 7, "linux": 8},
    "PodSandboxMetadata": {"name": 1, "uid": 2, "namespace": 3, "attempt": 4},
    "LinuxPodSandboxConfig": {"cgroup_parent": 1, "security_context": 2, "sysctls": 3},
    "LinuxSandboxSecurityContext": {"namespace_options": 1, "run_as_user": 3, "readonly_rootfs": 4,
                                    "supplemental_groups": 5, "privileged": 6, "run_as_group": 8},
    "NamespaceOption": {"network": 1, "pid": 2, "ipc": 3, "target_id": 4},
    "PortMapping": {"protocol": 1, "container_port": 2, "host_port": 3, "host_ip": 4},
    "ContainerConfig": {"metadata": 1, "image": 2, "command": 3, "args": 4, "working_dir": 5, "envs": 6,
                        "mounts": 7, "devices": 8, "labels": 9, "annotations": 10, "log_path": 11,
                        "stdin": 12, "stdin_once": 13, "tty": 14, "linux": 15},
    "Mount": {"container_path": 1, "host_path": 2, "readonly": 3, "selinux_relabel": 4, "propagation": 5},
    "LinuxContainerResources": {"cpu_period": 1, "cpu_quota": 2, "cpu_shares": 3, "memory_limit_in_bytes": 4,
                                "oom_score_adj": 5, "cpuset_cpus": 6, "cpuset_mems": 7, "hugepage_limits": 8,
                                "unified": 9, "memory_swap_limit_in_bytes": 10},
    "LinuxContainerSecurityContext": {"capabilities": 1, "privileged": 2, "namespace_options": 3,
                                      "run_as_user": 5, "run_as_username": 6, "readonly_rootfs": 7,
                                      "supplemental_groups": 8, "no_new_privs": 11, "run_as_group": 12,
                                      "masked_paths": 13, "readonly_paths": 14},
    "CreateContainerRequest": {"pod_sandbox_id": 1, "config": 2, "sandbox_config": 3},
    "StopContainerRequest": {"container_id": 1, "timeout": 2},
    "PodSandboxStatus": {"id": 1, "metadata": 2, "state": 3, "created_at": 4, "network": 5, "linux": 6,
                         "labels": 7, "annotations": 8},
    "PodSandboxNetworkStatus": {"ip": 1, "additional_ips": 2},
    "Namespace": {"options": 2},
    "ContainerStatus": {"id": 1, "metadata": 2, "state": 3, "created_at": 4, "started_at": 5,
                        "finished_at": 6, "exit_code": 7, "image": 8, "image_ref": 9, "reason": 10,
                        "message": 11, "labels": 12, "annotations": 13, "mounts": 14, "log_path": 15},
    "ContainerFilter": {"id": 1, "state": 2, "pod_sandbox_id": 3, "label_selector": 4},
    "PodSandboxFilter": {"id": 1, "state": 2, "label_selector": 3},
    "Container": {"id": 1, "pod_sandbox_id": 2, "metadata": 3, "image": 4, "image_ref": 5, "state": 6,
                  "created_at": 7, "image_id": 10},
    "ExecSyncRequest": {"container_id": 1, "cmd": 2, "timeout": 3},
    "ExecSyncResponse": {"stdout": 1, "stderr": 2, "exit_code": 3},
    "ExecRequest": {"container_id": 1, "cmd": 2, "tty": 3, "stdin": 4, "stdout": 5, "stderr": 6},
    "AttachRequest": {"container_id": 1, "stdin": 2, "tty": 3, "stdout": 4, "stderr": 5},
    "Image": {"id": 1, "repo_tags": 2, "repo_digests": 3, "size": 4, "uid": 5, "username": 6, "spec": 7,
              "pinned": 8},
    "AuthConfig": {"username": 1, "password": 2, "auth": 3, "server_address": 4, "identity_token": 5,
                   "registry_token": 6},
    "PullImageRequest": {"image": 1, "auth": 2, "sandbox_config": 3},
    "StatusResponse": {"status": 1, "info": 2},
}


@pytest.mark.parametrize("message", sorted(UPSTREAM_NUMBERS))
def test_field_numbers_match_upstream(message: str) -> None:
    fields = getattr(pb, message).DESCRIPTOR.fields_by_name
    got = {name: fields[name].number for name in UPSTREAM_NUMBERS[message] if name in fields}
    assert got == UPSTREAM_NUMBERS[message]


def test_field_types_that_matter() -> None:
    # Wrapper messages (not plain ints) where upstream uses them, and the integer widths.
    sc = pb.LinuxContainerSecurityContext.DESCRIPTOR.fields_by_name
    assert sc["run_as_user"].message_type.full_name == "runtime.v1.Int64Value"
    assert sc["run_as_group"].message_type.full_name == "runtime.v1.Int64Value"
    assert pb.ContainerFilter.DESCRIPTOR.fields_by_name["state"].message_type.full_name \
        == "runtime.v1.ContainerStateValue"
    assert pb.ContainerStatus.DESCRIPTOR.fields_by_name["exit_code"].type \
        == pb.ContainerStatus.DESCRIPTOR.fields_by_name["exit_code"].TYPE_INT32
    assert pb.ExecSyncResponse.DESCRIPTOR.fields_by_name["stdout"].type \
        == pb.ExecSyncResponse.DESCRIPTOR.fields_by_name["stdout"].TYPE_BYTES


def test_enum_values_match_upstream() -> None:
    assert (pb.SANDBOX_READY, pb.SANDBOX_NOTREADY) == (0, 1)
    assert (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING, pb.CONTAINER_EXITED, pb.CONTAINER_UNKNOWN) == (0, 1, 2, 3)
    assert (pb.POD, pb.CONTAINER, pb.NODE, pb.TARGET) == (0, 1, 2, 3)
    assert (pb.TCP, pb.UDP, pb.SCTP) == (0, 1, 2)
    assert (pb.PROPAGATION_PRIVATE, pb.PROPAGATION_HOST_TO_CONTAINER, pb.PROPAGATION_BIDIRECTIONAL) == (0, 1, 2)


def test_package_and_services() -> None:
    assert pb.DESCRIPTOR.package == "runtime.v1"
    assert set(pb.DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}


class _RecordingChannel:
    """Stands in for a grpc channel: records the method path of every stub callable."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def unary_unary(self, path: str, **_: object) -> None:
        self.paths.append(path)


RUNTIME_RPCS = ["Version", "Status", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
                "ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
                "ListContainers", "ContainerStatus", "UpdateContainerResources", "ReopenContainerLog",
                "ExecSync", "Exec", "Attach", "PortForward"]
IMAGE_RPCS = ["ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"]


def test_stub_method_paths() -> None:
    ch = _RecordingChannel()
    pb_grpc.RuntimeServiceStub(ch)
    pb_grpc.ImageServiceStub(ch)
    assert "/runtime.v1.RuntimeService/RunPodSandbox" in ch.paths
    assert set(ch.paths) == {f"/runtime.v1.RuntimeService/{m}" for m in RUNTIME_RPCS} \
        | {f"/runtime.v1.ImageService/{m}" for m in IMAGE_RPCS}


def test_cri_error_not_found() -> None:
    from kybernetes.agent.cri.client import CriError

    err = CriError("RemoveContainer", grpc.StatusCode.NOT_FOUND, "no such container")
    assert err.not_found and err.code is grpc.StatusCode.NOT_FOUND and err.details == "no such container"
    assert not CriError("PullImage", grpc.StatusCode.UNKNOWN, "x").not_found
