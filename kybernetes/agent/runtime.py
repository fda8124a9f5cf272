"""The agent's side of CRI: sandbox and container specs as CRI messages, and what the
runtime reports as the sandbox and container states the pod sync decides from."""

from __future__ import annotations

from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.podspec import (
    CONTAINER_NAME,
    EPHEMERAL,
    INIT,
    POD_UID,
    RESTART_COUNT,
    SPEC_HASH,
    ContainerSpec,
    SandboxSpec,
)
from kybernetes.agent.podsync import CREATED, EXITED, RUNNING, UNKNOWN, ContainerState, SandboxState

_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}
_STATES = {pb.CONTAINER_CREATED: CREATED, pb.CONTAINER_RUNNING: RUNNING, pb.CONTAINER_EXITED: EXITED,
           pb.CONTAINER_UNKNOWN: UNKNOWN}
# What a container may not see of the host unless privileged (the kubelet's defaults).
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


_MODES = {"NODE": pb.NODE, "POD": pb.POD, "CONTAINER": pb.CONTAINER}
_SECCOMP = {"RuntimeDefault": pb.SecurityProfile.RuntimeDefault, "Unconfined": pb.SecurityProfile.Unconfined,
            "Localhost": pb.SecurityProfile.Localhost}


def _int64(value: int | None) -> pb.Int64Value | None:
    return pb.Int64Value(value=int(value)) if value is not None else None


def _namespace_options(modes: tuple[str, str, str], host_network: bool = False) -> pb.NamespaceOption:
    network, pid, ipc = modes
    return pb.NamespaceOption(network=pb.NODE if host_network else _MODES[network], pid=_MODES[pid],
                              ipc=_MODES[ipc])


def _seccomp(profile: tuple[str, str]) -> pb.SecurityProfile:
    # Always set: an absent profile is RuntimeDefault to some runtimes, Unconfined to others.
    kind, path = profile
    return pb.SecurityProfile(profile_type=_SECCOMP[kind], localhost_ref=path)


def sandbox_config(spec: SandboxSpec) -> pb.PodSandboxConfig:
    security = pb.LinuxSandboxSecurityContext(
        namespace_options=_namespace_options(spec.namespaces, spec.host_network),
        supplemental_groups=spec.supplemental_groups, privileged=spec.privileged, seccomp=_seccomp(spec.seccomp))
    if spec.run_as_user is not None:
        security.run_as_user.CopyFrom(_int64(spec.run_as_user))
    if spec.run_as_group is not None:
        security.run_as_group.CopyFrom(_int64(spec.run_as_group))
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=spec.name, uid=spec.uid, namespace=spec.namespace, attempt=spec.attempt),
        hostname="" if spec.host_network else spec.hostname,
        log_directory=spec.log_directory,
        port_mappings=[pb.PortMapping(protocol=_PROTOCOLS.get(proto, pb.TCP), container_port=cport, host_port=hport,
                                      host_ip=hip) for proto, cport, hport, hip in spec.port_mappings],
        labels=spec.labels, annotations=spec.annotations,
        linux=pb.LinuxPodSandboxConfig(security_context=security, sysctls=spec.sysctls))
    if spec.dns_servers or spec.dns_searches or spec.dns_options:
        config.dns_config.CopyFrom(pb.DNSConfig(servers=spec.dns_servers, searches=spec.dns_searches,
                                                options=spec.dns_options))
    return config


def container_config(spec: ContainerSpec, host_network: bool) -> pb.ContainerConfig:
    security = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(add_capabilities=spec.add_capabilities, drop_capabilities=spec.drop_capabilities),
        privileged=spec.privileged, readonly_rootfs=spec.readonly_rootfs, supplemental_groups=spec.supplemental_groups,
        namespace_options=_namespace_options(spec.namespaces, host_network), no_new_privs=spec.no_new_privs,
        seccomp=_seccomp(spec.seccomp))
    if spec.pid_target_id:
        # As the kubelet does for an ephemeral container's targetContainerName: its processes are in view.
        security.namespace_options.pid = pb.TARGET
        security.namespace_options.target_id = spec.pid_target_id
    if not spec.privileged and not spec.proc_unmasked:
        security.masked_paths.extend(MASKED_PATHS)
        security.readonly_paths.extend(READONLY_PATHS)
    if spec.run_as_user is not None:
        security.run_as_user.CopyFrom(_int64(spec.run_as_user))
    if spec.run_as_group is not None:
        security.run_as_group.CopyFrom(_int64(spec.run_as_group))
    resources = pb.LinuxContainerResources(cpu_shares=spec.cpu_shares, cpu_quota=spec.cpu_quota,
                                           cpu_period=spec.cpu_period, memory_limit_in_bytes=spec.memory_limit)
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=spec.name, attempt=int(spec.annotations.get(RESTART_COUNT, "0"))),
        image=pb.ImageSpec(image=spec.image), command=spec.command, args=spec.args, working_dir=spec.working_dir,
        envs=[pb.KeyValue(key=k, value=v) for k, v in spec.env], labels=spec.labels, annotations=spec.annotations,
        mounts=[pb.Mount(container_path=c, host_path=h, readonly=ro, propagation=spec.propagation.get(c, 0))
                for c, h, ro in spec.mounts],
        log_path=spec.log_path, stdin=spec.stdin, stdin_once=spec.stdin_once, tty=spec.tty,
        linux=pb.LinuxContainerConfig(resources=resources, security_context=security))


def sandbox_state(status: pb.PodSandboxStatus) -> SandboxState:
    ips = [status.network.ip] if status.network.ip else []
    ips += [p.ip for p in status.network.additional_ips if p.ip]
    return SandboxState(id=status.id, ready=status.state == pb.SANDBOX_READY, attempt=status.metadata.attempt,
                        created_at=status.created_at / 1e9, ip=status.network.ip, ips=ips,
                        runtime_handler=status.runtime_handler)


def container_state(status: pb.ContainerStatus) -> ContainerState:
    ann = status.annotations
    try:
        restarts = int(ann.get(RESTART_COUNT, "0"))
    except ValueError:
        restarts = 0
    return ContainerState(
        id=status.id, name=status.labels.get(CONTAINER_NAME) or status.metadata.name,
        state=_STATES.get(status.state, UNKNOWN), restart_count=restarts, spec_hash=ann.get(SPEC_HASH, ""),
        init=ann.get(INIT) == "true", ephemeral=ann.get(EPHEMERAL) == "true", created_at=status.created_at / 1e9, started_at=status.started_at / 1e9,
        finished_at=status.finished_at / 1e9, exit_code=status.exit_code, reason=status.reason,
        message=status.message, image=status.image.image, image_ref=status.image_ref)


def pod_uid_of(labels: dict[str, str]) -> str:
    return labels.get(POD_UID, "")
