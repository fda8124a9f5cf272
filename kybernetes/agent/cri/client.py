"""The node agent's connection to a container runtime over CRI v1 (gRPC on a unix socket).

This module owns the channel to the runtime, the per-call deadlines, and the mapping of
every gRPC failure to one exception type, `CriError`. Methods take and return the
generated protobuf messages of `runtime_pb2` as they are: building configs from pod specs
and reading statuses back is the agent's job, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc
from grpc import aio

from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.runtime_pb2_grpc import ImageServiceStub, RuntimeServiceStub

# The CRI version the agent speaks, sent in VersionRequest.
CRI_API_VERSION = "v1"

# Deadlines (seconds). Queries are quick; lifecycle calls may wait on the runtime, CNI
# plugins or a container's grace period; a pull may move a lot of data.
STATUS_TIMEOUT = 30.0
LIFECYCLE_TIMEOUT = 120.0
PULL_TIMEOUT = 300.0

# Large enough for ListContainers on a busy node and for ExecSync output (which the
# runtime caps at 16 MiB per stream).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_Resp = TypeVar("_Resp")

log = logging.getLogger(__name__)
# KYB_CRI_TIMING=1 logs every call's duration (at warning level, so that it shows without -v),
# and the agent each pod sync and status write: where a pod's start goes, call by call, when
# profiling the node (`benchmarks/agent_bench.py --phases` reads them).
TIMING = os.environ.get("KYB_CRI_TIMING") == "1"


class CriError(Exception):
    """A CRI call failed: `code` is the gRPC status, `details` the runtime's message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"CRI {method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details

    @property
    def not_found(self) -> bool:
        """The object does not exist (for removals: already gone)."""
        return self.code == grpc.StatusCode.NOT_FOUND

    @property
    def unavailable(self) -> bool:
        """The runtime could not be reached."""
        return self.code == grpc.StatusCode.UNAVAILABLE


class CriClient:
    """An async CRI client. Create it, `await connect(path)`, and `await close()` at the end
    (or use it as an async context manager after connecting)."""

    def __init__(self) -> None:
        self._channel: aio.Channel | None = None
        self._runtime: RuntimeServiceStub | None = None
        self._images: ImageServiceStub | None = None
        self.socket_path = ""

    # ------------------------------------------------------------------ connection

    async def connect(self, socket_path: str, timeout: float = 10.0) -> None:
        """Open a channel to the runtime's unix socket and wait until it is ready."""
        if self._channel is not None:
            raise RuntimeError("CriClient is already connected")
        channel = aio.insecure_channel(
            "unix://" + socket_path,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except TimeoutError:
            await channel.close()
            raise CriError("connect", grpc.StatusCode.UNAVAILABLE,
                           f"runtime at {socket_path} not ready after {timeout:g}s") from None
        except BaseException:
            await channel.close()
            raise
        self._channel = channel
        self._runtime = RuntimeServiceStub(channel)
        self._images = ImageServiceStub(channel)
        self.socket_path = socket_path

    async def close(self) -> None:
        """Close the channel; calls still in flight are cancelled."""
        channel, self._channel = self._channel, None
        self._runtime = self._images = None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> CriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def runtime(self) -> RuntimeServiceStub:
        if self._runtime is None:
            raise RuntimeError("CriClient is not connected")
        return self._runtime

    @property
    def images(self) -> ImageServiceStub:
        if self._images is None:
            raise RuntimeError("CriClient is not connected")
        return self._images

    @staticmethod
    async def _call(method: str, rpc: Callable[..., Awaitable[_Resp]], request: Any,
                    timeout: float | None) -> _Resp:
        start = time.monotonic() if TIMING else 0.0
        try:
            return await rpc(request, timeout=timeout)
        except aio.AioRpcError as e:
            raise CriError(method, e.code(), e.details() or "") from e
        finally:
            if TIMING:
                log.warning("CRI %s %.1f ms", method, (time.monotonic() - start) * 1000)

    # --------------------------------------------------------------------- runtime

    async def version(self) -> pb.VersionResponse:
        return await self._call("Version", self.runtime.Version,
                                pb.VersionRequest(version=CRI_API_VERSION), STATUS_TIMEOUT)

    async def status(self, verbose: bool = False) -> pb.StatusResponse:
        return await self._call("Status", self.runtime.Status, pb.StatusRequest(verbose=verbose),
                                STATUS_TIMEOUT)

    # ---------------------------------------------------------------- pod sandboxes

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        """Create and start a sandbox; returns its id."""
        req = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        resp = await self._call("RunPodSandbox", self.runtime.RunPodSandbox, req, LIFECYCLE_TIMEOUT)
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call("StopPodSandbox", self.runtime.StopPodSandbox,
                         pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), LIFECYCLE_TIMEOUT)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call("RemovePodSandbox", self.runtime.RemovePodSandbox,
                         pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), LIFECYCLE_TIMEOUT)

    async def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> pb.PodSandboxStatusResponse:
        """The whole response: `.status`, and `.info` (JSON strings) when verbose."""
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        return await self._call("PodSandboxStatus", self.runtime.PodSandboxStatus, req, STATUS_TIMEOUT)

    async def list_pod_sandboxes(self, *, sandbox_id: str = "", state: int | None = None,
                                 label_selector: Mapping[str, str] | None = None) -> list[pb.PodSandbox]:
        """Sandboxes matching every given filter; `state` is a `pb.PodSandboxState` value."""
        flt = pb.PodSandboxFilter(id=sandbox_id, label_selector=dict(label_selector or {}))
        if state is not None:
            flt.state.state = state
        resp = await self._call("ListPodSandbox", self.runtime.ListPodSandbox,
                                pb.ListPodSandboxRequest(filter=flt), STATUS_TIMEOUT)
        return list(resp.items)

    # ------------------------------------------------------------------ containers

    async def create_container(self, sandbox_id: str, config: pb.ContainerConfig,
                               sandbox_config: pb.PodSandboxConfig) -> str:
        """Create a container in a sandbox; returns its id."""
        req = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        resp = await self._call("CreateContainer", self.runtime.CreateContainer, req, LIFECYCLE_TIMEOUT)
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        await self._call("StartContainer", self.runtime.StartContainer,
                         pb.StartContainerRequest(container_id=container_id), LIFECYCLE_TIMEOUT)

    async def stop_container(self, container_id: str, timeout_seconds: int = 30) -> None:
        """Signal the container, then kill it after `timeout_seconds` (0: kill at once)."""
        req = pb.StopContainerRequest(container_id=container_id, timeout=timeout_seconds)
        await self._call("StopContainer", self.runtime.StopContainer, req, timeout_seconds + LIFECYCLE_TIMEOUT)

    async def remove_container(self, container_id: str) -> None:
        await self._call("RemoveContainer", self.runtime.RemoveContainer,
                         pb.RemoveContainerRequest(container_id=container_id), LIFECYCLE_TIMEOUT)

    async def list_containers(self, *, container_id: str = "", sandbox_id: str = "", state: int | None = None,
                              label_selector: Mapping[str, str] | None = None) -> list[pb.Container]:
        """Containers matching every given filter; `state` is a `pb.ContainerState` value."""
        flt = pb.ContainerFilter(id=container_id, pod_sandbox_id=sandbox_id,
                                 label_selector=dict(label_selector or {}))
        if state is not None:
            flt.state.state = state
        resp = await self._call("ListContainers", self.runtime.ListContainers,
                                pb.ListContainersRequest(filter=flt), STATUS_TIMEOUT)
        return list(resp.containers)

    async def container_status(self, container_id: str, verbose: bool = False) -> pb.ContainerStatusResponse:
        """The whole response: `.status`, and `.info` (JSON strings) when verbose."""
        req = pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return await self._call("ContainerStatus", self.runtime.ContainerStatus, req, STATUS_TIMEOUT)

    async def update_container_resources(self, container_id: str, linux: pb.LinuxContainerResources) -> None:
        req = pb.UpdateContainerResourcesRequest(container_id=container_id, linux=linux)
        await self._call("UpdateContainerResources", self.runtime.UpdateContainerResources, req,
                         LIFECYCLE_TIMEOUT)

    async def reopen_container_log(self, container_id: str) -> None:
        await self._call("ReopenContainerLog", self.runtime.ReopenContainerLog,
                         pb.ReopenContainerLogRequest(container_id=container_id), STATUS_TIMEOUT)

    # ---------------------------------------------------- exec, attach, port-forward

    async def exec_sync(self, container_id: str, cmd: Iterable[str], timeout: int = 0) -> tuple[int, bytes, bytes]:
        """Run `cmd` in the container and wait: (exit_code, stdout, stderr). `timeout`
        seconds bound the command (0: none); the call's deadline allows for it."""
        req = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        deadline = timeout + STATUS_TIMEOUT if timeout > 0 else None
        resp = await self._call("ExecSync", self.runtime.ExecSync, req, deadline)
        return resp.exit_code, resp.stdout, resp.stderr

    async def exec(self, container_id: str, cmd: Iterable[str], *, tty: bool = False, stdin: bool = False,
                   stdout: bool = True, stderr: bool = True) -> str:
        """The URL of the runtime's streaming server for this exec session."""
        req = pb.ExecRequest(container_id=container_id, cmd=list(cmd), tty=tty, stdin=stdin, stdout=stdout,
                             stderr=stderr and not tty)
        resp = await self._call("Exec", self.runtime.Exec, req, STATUS_TIMEOUT)
        return resp.url

    async def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False, stdout: bool = True,
                     stderr: bool = True) -> str:
        """The URL of the runtime's streaming server for attaching to the container."""
        req = pb.AttachRequest(container_id=container_id, tty=tty, stdin=stdin, stdout=stdout,
                               stderr=stderr and not tty)
        resp = await self._call("Attach", self.runtime.Attach, req, STATUS_TIMEOUT)
        return resp.url

    async def port_forward(self, sandbox_id: str, ports: Iterable[int] = ()) -> str:
        """The URL of the runtime's streaming server for forwarding ports of the sandbox."""
        req = pb.PortForwardRequest(pod_sandbox_id=sandbox_id, port=list(ports))
        resp = await self._call("PortForward", self.runtime.PortForward, req, STATUS_TIMEOUT)
        return resp.url

    # ---------------------------------------------------------------------- images

    async def pull_image(self, image: str, auth: pb.AuthConfig | None = None,
                         sandbox_config: pb.PodSandboxConfig | None = None,
                         timeout: float = PULL_TIMEOUT) -> str:
        """Pull an image; returns the runtime's reference to it (the image id)."""
        req = pb.PullImageRequest(image=pb.ImageSpec(image=image), auth=auth, sandbox_config=sandbox_config)
        resp = await self._call("PullImage", self.images.PullImage, req, timeout)
        return resp.image_ref

    async def image_status(self, image: str) -> pb.Image | None:
        """The image, or None if the runtime does not have it."""
        req = pb.ImageStatusRequest(image=pb.ImageSpec(image=image))
        resp = await self._call("ImageStatus", self.images.ImageStatus, req, STATUS_TIMEOUT)
        return resp.image if resp.HasField("image") else None

    async def list_images(self, image: str = "") -> list[pb.Image]:
        """All images, or those matching the reference `image`."""
        req = pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image=image)) if image else None)
        resp = await self._call("ListImages", self.images.ListImages, req, STATUS_TIMEOUT)
        return list(resp.images)

    async def remove_image(self, image: str) -> None:
        await self._call("RemoveImage", self.images.RemoveImage,
                         pb.RemoveImageRequest(image=pb.ImageSpec(image=image)), LIFECYCLE_TIMEOUT)

    async def image_fs_info(self) -> pb.ImageFsInfoResponse:
        return await self._call("ImageFsInfo", self.images.ImageFsInfo, pb.ImageFsInfoRequest(),
                                STATUS_TIMEOUT)
