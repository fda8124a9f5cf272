"""Container probes: liveness, readiness and startup, by exec, httpGet, tcpSocket or grpc,
with Kubernetes' timing fields, and lifecycle hook handlers run the same ways. `ProbeResult` decides from consecutive outcomes; a
`Prober` task per (container, kind) runs one probe on its period and reports changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"


def kill_grace(pod: Obj, container: str, kind: str) -> int:
    """Seconds a container failing its `kind` probe gets to stop: the probe's own
    terminationGracePeriodSeconds (liveness and startup probes) over the pod's."""
    spec = pod.get("spec") or {}
    grace = spec.get("terminationGracePeriodSeconds", 30)
    key = {LIVENESS: "livenessProbe", STARTUP: "startupProbe"}.get(kind)
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if key and c.get("name") == container:
            own = (c.get(key) or {}).get("terminationGracePeriodSeconds")
            if own is not None:
                grace = own
    return int(grace)


@dataclass
class ProbeResult:
    """Consecutive outcomes against the thresholds. `ok` is the probe's verdict: None
    until the first verdict (readiness: not ready yet)."""

    success_threshold: int = 1
    failure_threshold: int = 3
    successes: int = 0
    failures: int = 0
    ok: bool | None = None

    def record(self, success: bool) -> bool:
        """Count one outcome; True when the verdict changed."""
        before = self.ok
        if success:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_threshold:
                self.ok = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.failure_threshold:
                self.ok = False
        return self.ok != before


def timing(probe: Obj) -> tuple[float, float, float, int, int]:
    """(initial delay, period, timeout, success threshold, failure threshold)."""
    return (float(probe.get("initialDelaySeconds") or 0), float(probe.get("periodSeconds") or 10),
            float(probe.get("timeoutSeconds") or 1), int(probe.get("successThreshold") or 1),
            int(probe.get("failureThreshold") or 3))


def resolve_port(port: Any, container: Obj) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in container")


def http_get_target(g: Obj, container: Obj, pod_ip: str) -> tuple[str, dict[str, str]]:
    """The URL and headers of an httpGet probe or hook: to the pod's IP unless `host` is set."""
    port = resolve_port(g.get("port"), container)
    host = g.get("host") or pod_ip
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = (g.get("scheme") or "HTTP").lower()
    path = g.get("path") or "/"
    headers = {h.get("name", ""): h.get("value", "") for h in g.get("httpHeaders") or []}
    return f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}", headers


ExecFn = Callable[[list[str], float], Awaitable[tuple[int, bytes, bytes]]]


async def run_probe(probe: Obj, container: Obj, pod_ip: str, exec_fn: ExecFn,
                    session: aiohttp.ClientSession) -> tuple[bool, str]:
    """One attempt: (success, what failed)."""
    _, _, timeout, _, _ = timing(probe)
    try:
        if probe.get("exec"):
            cmd = list(probe["exec"].get("command") or [])
            try:
                # The runtime bounds the command by the timeout; the extra second is for the call itself.
                code, out, err = await asyncio.wait_for(exec_fn(cmd, timeout), timeout + 1)
            except TimeoutError:
                raise
            except Exception as e:  # noqa: BLE001 - the runtime's refusal (the command timed out, the container is gone) fails the probe
                if "timeout" in str(e).lower() or "deadline" in str(e).lower():
                    return False, f"command {' '.join(cmd)!r} timed out"
                return False, f"command {' '.join(cmd)!r} failed: {e}"
            if code == 0:
                return True, ""
            return False, (out + err).decode(errors="replace").strip() or f"command {cmd} exited with {code}"
        if probe.get("httpGet"):
            url, headers = http_get_target(probe["httpGet"], container, pod_ip)
            status, body = await asyncio.wait_for(http_probe_status(session, url, headers, timeout), timeout)
            if 300 <= status < 400:
                # A redirect elsewhere passes, with a warning (the kubelet's ProbeWarning event).
                return True, f"Probe terminated redirects, Response body: {body}"
            if 200 <= status < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {status}"
        if probe.get("grpc"):
            return await grpc_health_check(probe["grpc"], pod_ip, timeout)
        if probe.get("tcpSocket"):
            t = probe["tcpSocket"]
            port = resolve_port(t.get("port"), container)
            _, writer = await asyncio.wait_for(asyncio.open_connection(t.get("host") or pod_ip, port), timeout)
            writer.close()
            return True, ""
    except TimeoutError:
        return False, f"timeout: probe did not answer within {timeout:g}s"
    except (OSError, aiohttp.ClientError, ValueError) as e:
        return False, str(e) or type(e).__name__
    return True, ""


MAX_REDIRECTS = 10
# What the kubelet reads of a probe's answer at most (10 KiB).
MAX_BODY = 10 * 1024


async def http_probe_status(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                            timeout: float) -> tuple[int, str]:
    """The status an httpGet probe judges by and the start of the body, redirects handled
    as the kubelet's: one to the same host is followed (at most 10), one elsewhere is not
    (its 3xx is the answer)."""
    target = yarl.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(target, headers=headers, ssl=False, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            location = resp.headers.get("Location")
            if resp.status not in (301, 302, 303, 307, 308) or not location:
                return resp.status, (await resp.content.read(MAX_BODY)).decode(errors="replace")
            following = target.join(yarl.URL(location))
            if following.host != target.host:
                return resp.status, (await resp.content.read(MAX_BODY)).decode(errors="replace")
            target = following
    raise aiohttp.TooManyRedirects(resp.request_info, resp.history, message=f"stopped after {MAX_REDIRECTS} redirects")


# grpc.health.v1: HealthCheckResponse.ServingStatus names by number.
_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def health_check_request(service: str) -> bytes:
    """A grpc.health.v1.HealthCheckRequest on the wire (field 1: service); two fields
    of protobuf are not worth a generated module."""
    raw = service.encode()
    if not raw:
        return b""
    size, length = bytearray(), len(raw)
    while True:
        byte, length = length & 0x7F, length >> 7
        size.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x0a" + bytes(size) + raw


def health_check_status(data: bytes) -> int:
    """The status (field 1, a varint) of a grpc.health.v1.HealthCheckResponse; 0 (UNKNOWN) when absent."""
    i = 0
    while i < len(data):
        key = data[i]
        i += 1
        value, shift = 0, 0
        while i < len(data):
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if key == 0x08:
            return value
        if key & 0x07 == 2:  # a length-delimited field of a newer version: skip its bytes
            i += value
        elif key & 0x07 != 0:
            break
    return 0


async def grpc_health_check(g: Obj, pod_ip: str, timeout: float) -> tuple[bool, str]:
    """A grpc probe as the kubelet's: grpc.health.v1.Health/Check on the pod's IP and
    port (plaintext), healthy only when the answer is SERVING."""
    from grpc import RpcError, aio

    target = f"{pod_ip}:{int(g.get('port') or 0)}"
    if ":" in pod_ip:
        target = f"[{pod_ip}]:{int(g.get('port') or 0)}"
    async with aio.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            answer = await check(health_check_request(g.get("service") or ""), timeout=timeout)
        except RpcError as e:
            code = e.code() if callable(getattr(e, "code", None)) else None
            if code is not None and code.name == "DEADLINE_EXCEEDED":
                return False, f"timeout: failed to connect service {target!r} within {timeout:g}s"
            details = e.details() if callable(getattr(e, "details", None)) else str(e)
            return False, f"failed to connect service {target!r}: {details}"
    status = health_check_status(answer)
    if status != 1:
        return False, f"service unhealthy (responded with {_SERVING_STATUS.get(status, str(status))!r})"
    return True, ""


async def run_hook(hook: Obj, container: Obj, pod_ip: str, exec_fn: ExecFn, session: aiohttp.ClientSession,
                   timeout: float) -> str:
    """Run a lifecycle hook handler (exec, httpGet or sleep) once; "" when it succeeded,
    else what failed, worded as the kubelet's hook errors. As the kubelet's, an httpGet
    hook succeeds on any HTTP answer: only failing to get one fails it."""
    if hook.get("exec"):
        cmd = list(hook["exec"].get("command") or [])
        try:
            code, out, err = await asyncio.wait_for(exec_fn(cmd, timeout), timeout + 1)
        except TimeoutError:
            return f"Exec lifecycle hook ({cmd}) failed - error: command timed out after {timeout:g}s"
        except Exception as e:  # noqa: BLE001 - the runtime's refusal is the hook's failure
            return f"Exec lifecycle hook ({cmd}) failed - error: {e}"
        if code != 0:
            output = (out + err).decode(errors="replace")
            return f"Exec lifecycle hook ({cmd}) failed - error: command exited with {code}, message: {output!r}"
        return ""
    if hook.get("httpGet"):
        g = hook["httpGet"]
        try:
            url, headers = http_get_target(g, container, pod_ip)
            async with session.get(url, headers=headers, ssl=False, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                await resp.read()
            return ""
        except TimeoutError:
            why = f"no answer within {timeout:g}s"
        except (OSError, aiohttp.ClientError, ValueError) as e:
            why = str(e) or type(e).__name__
        return f"HTTP lifecycle hook ({g.get('path') or '/'}) failed - error: {why}"
    if hook.get("sleep"):
        await asyncio.sleep(min(float(hook["sleep"].get("seconds") or 0), timeout))
        return ""
    # tcpSocket is in the API for old clients only: the kubelet fails such a hook.
    return "Cannot run handler: invalid handler: tcpSocket is not supported as a lifecycle handler"


def verdicts_kept_over_restart(reported: Obj | None, container_id: str, container_started_at: float,
                               agent_started_at: float, pod_ready: bool) -> dict[str, bool]:
    """The verdicts an agent that just started keeps for a container it finds running,
    as the kubelet does since 1.35: a container that ran before this agent and that the
    pod's last status (same container id, pod Ready) reported ready or started stays so
    until its probes say otherwise, so restarting the agent does not withdraw healthy
    pods from their Services. `reported` is the container's entry of that status."""
    if (not reported or container_started_at <= 0 or container_started_at >= agent_started_at
            or reported.get("containerID") != f"containerd://{container_id}"
            or "running" not in (reported.get("state") or {})):
        return {}
    out: dict[str, bool] = {}
    if reported.get("started"):
        out[STARTUP] = True
    if reported.get("ready") and pod_ready:
        out[READINESS] = True
    return out


class Prober:
    """Runs one probe of one running container until cancelled; calls `on_change` with
    the new verdict and `on_failure` with the message of each failed attempt."""

    def __init__(self, kind: str, probe: Obj, container: Obj, pod_ip: str, exec_fn: ExecFn,
                 session: aiohttp.ClientSession, on_change: Callable[[str, bool], None],
                 on_failure: Callable[[str, str], None], verdict: bool | None = None,
                 on_warning: Callable[[str, str], None] | None = None) -> None:
        delay, period, _, success, failure = timing(probe)
        self.kind = kind
        self.probe = probe
        self.container = container
        self.pod_ip = pod_ip
        self.exec_fn = exec_fn
        self.session = session
        self.delay, self.period = delay, period
        self.result = ProbeResult(success, failure, ok=verdict)
        self.on_change = on_change
        self.on_failure = on_failure
        self.on_warning = on_warning
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        # A verdict carried over from before an agent restart is re-checked at once.
        await asyncio.sleep(self.delay if self.result.ok is None else 0)
        while True:
            try:
                ok, why = await run_probe(self.probe, self.container, self.pod_ip, self.exec_fn, self.session)
            except Exception as e:  # noqa: BLE001 - an attempt that breaks is a failed one; the prober keeps going
                ok, why = False, str(e) or type(e).__name__
            if not ok:
                self.on_failure(self.kind, why)
            elif why and self.on_warning is not None:
                self.on_warning(self.kind, why)
            if self.result.record(ok) and self.result.ok is not None:
                self.on_change(self.kind, self.result.ok)
            if self.kind == STARTUP and self.result.ok is not None:
                return
            await asyncio.sleep(self.period)
