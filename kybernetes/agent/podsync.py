"""One pod's sync, decided without I/O: from the pod and what the runtime reports of its
sandbox and containers, what to start, stop and remove next (init containers in
order, restarts per restartPolicy with CrashLoopBackOff, ephemeral containers started
once and never restarted), and the pod status to report, as the kubelet words it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.agent.imagepull import normalized_name
from kybernetes.api.pods import qos_class, readiness_gates_message
from kybernetes.api.timefmt import parse_time, rfc3339

Obj = dict[str, Any]

BACKOFF_BASE = 10.0
BACKOFF_MAX = 300.0
# A container that ran this long without exiting starts its backoff over.
BACKOFF_RESET = 600.0

RUNNING, EXITED, CREATED, UNKNOWN = "running", "exited", "created", "unknown"


@dataclass
class SandboxState:
    id: str
    ready: bool
    attempt: int
    created_at: float
    ip: str = ""
    ips: list[str] = field(default_factory=list)
    runtime_handler: str = ""  # the CRI handler it runs on ("": the runtime's default)


@dataclass
class ContainerState:
    id: str
    name: str
    state: str
    restart_count: int
    spec_hash: str
    init: bool = False
    ephemeral: bool = False
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""


@dataclass
class Plan:
    """What one sync does, in order."""

    kill_pod: bool = False            # stop every container and the sandbox
    new_sandbox: bool = False         # (re)create the sandbox; old containers go
    start: list[tuple[Obj, bool, int]] = field(default_factory=list)  # (container, is init, restart count)
    remove: list[str] = field(default_factory=list)  # container ids no longer needed
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (reason, message)
    requeue_after: float | None = None
    failed: bool = False              # restartPolicy forbids starting what failed
    deadline_exceeded: bool = False   # activeDeadlineSeconds passed: kill the pod, phase Failed


def spec_hash(container: Obj) -> str:
    """Which spec a running container was made from: a change means replace it. Its
    resources are left out, as the kubelet's hash leaves them: a resize changes them in
    place (agent/resize.py)."""
    kept = {k: v for k, v in container.items() if k not in ("resources", "resizePolicy")}
    return hashlib.sha256(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def backoff_seconds(restart_count: int) -> float:
    """CrashLoopBackOff: 10 s doubling per restart, at most 5 minutes."""
    if restart_count <= 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** (restart_count - 1), BACKOFF_MAX)


def probes_readiness_while_terminating(pod: Obj, containers: list[ContainerState]) -> bool:
    """Whether a deleted pod has a running container with a readiness probe: its readiness
    is then probed (and reported) while it stops, as the kubelet does."""
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    spec = pod.get("spec") or {}
    probed = {c.get("name", "") for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
              if c.get("readinessProbe")}
    return any(c.state == RUNNING and not c.ephemeral and c.name in probed for c in containers)


def latest_by_name(containers: list[ContainerState]) -> dict[str, ContainerState]:
    out: dict[str, ContainerState] = {}
    for c in containers:
        have = out.get(c.name)
        if have is None or (c.restart_count, c.created_at) > (have.restart_count, have.created_at):
            out[c.name] = c
    return out


def should_restart(policy: str, c: ContainerState) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return c.exit_code != 0
    return False


def _restart_or_wait(plan: Plan, pod: Obj, container: Obj, c: ContainerState, init: bool, now: float) -> None:
    ran = c.finished_at - c.started_at if c.started_at and c.finished_at else 0.0
    count = c.restart_count + 1
    # As the kubelet's back-off: the first restart is at once, then 10 s, 20 s, ... after
    # each exit (counted from when the container finished).
    delay = 0.0 if ran >= BACKOFF_RESET else backoff_seconds(c.restart_count)
    ready_at = c.finished_at + delay
    if now >= ready_at:
        plan.start.append((container, init, count))
        return
    name = container.get("name", "")
    meta = pod.get("metadata") or {}
    plan.waiting[name] = ("CrashLoopBackOff",
                          f"back-off {int(delay)}s restarting failed container={name} "
                          f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})")
    wait = ready_at - now
    plan.requeue_after = wait if plan.requeue_after is None else min(plan.requeue_after, wait)


def is_sidecar(container: Obj) -> bool:
    """A native sidecar: an init container with `restartPolicy: Always`."""
    return container.get("restartPolicy") == "Always"


def deadline_exceeded(pod: Obj, now: float) -> float | None:
    """Seconds left of the pod's activeDeadlineSeconds, counted from its startTime
    (<= 0: exceeded); None when it has no deadline or has not started."""
    seconds = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = parse_time((pod.get("status") or {}).get("startTime"))
    if seconds is None or started is None:
        return None
    return started.timestamp() + int(seconds) - now


def _regulars_done(spec: Obj, policy: str, latest: dict[str, ContainerState]) -> bool:
    """Every regular container has exited and restartPolicy restarts none of them: the
    pod is finished whatever its sidecars do."""
    regular = [latest.get(c.get("name", "")) for c in spec.get("containers") or []]
    return policy != "Always" and bool(regular) and all(
        c is not None and c.state == EXITED and not should_restart(policy, c) for c in regular)


def plan_pod(pod: Obj, sandbox: SandboxState | None, containers: list[ContainerState], now: float,
             started: dict[str, bool] | None = None) -> Plan:
    """The next steps for `pod`. `started` says, per running sidecar with a startupProbe,
    whether that probe has succeeded (the next init container waits for it)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    plan = Plan()
    if meta.get("deletionTimestamp"):
        plan.kill_pod = True
        return plan
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed") and sandbox is not None:
        plan.kill_pod = True
        return plan
    if phase not in ("Succeeded", "Failed"):
        left = deadline_exceeded(pod, now)
        if left is not None and left <= 0:
            plan.kill_pod = plan.deadline_exceeded = True
            return plan
        if left is not None:
            plan.requeue_after = left
    latest = latest_by_name(containers)
    if sandbox is None or not sandbox.ready:
        if phase in ("Succeeded", "Failed"):
            return plan
        # A pod that finished (restartPolicy forbids more) does not get a new sandbox.
        if sandbox is not None and policy != "Always" and containers and all(
                c.state == EXITED and not should_restart(policy, c) for c in latest.values()
                if not c.init and not c.ephemeral):
            return plan
        plan.new_sandbox = True
        plan.remove = [c.id for c in containers]
        latest = {}
        containers = []
    # Old attempts of a container are kept one deep (for `logs --previous` and lastState).
    attempts: dict[str, list[ContainerState]] = {}
    for c in containers:
        attempts.setdefault(c.name, []).append(c)
    for lst in attempts.values():
        lst.sort(key=lambda c: (c.restart_count, c.created_at), reverse=True)
        plan.remove += [c.id for c in lst[2:] if c.state != RUNNING]
    by_name = {c.get("name", ""): c for c in spec.get("containers") or []}
    for c in containers:
        if not c.init and not c.ephemeral and c.name not in by_name and c.state == RUNNING:
            plan.remove.append(c.id)
    inits = spec.get("initContainers") or []
    if _regulars_done(spec, policy, latest):
        # As the kubelet: sidecars do not keep a finished pod alive; the pod is killed
        # (sidecars last, in reverse order) and they are not restarted.
        plan.kill_pod = any(is_sidecar(ic) and (c := latest.get(ic.get("name", ""))) is not None
                            and c.state in (RUNNING, CREATED) for ic in inits)
        return plan
    # Ephemeral containers start even before initialization completes, once: one that ran
    # (here or in an earlier sandbox, as the pod's status says) is never started again.
    reported = {s.get("name") for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
                if set(s.get("state") or {}) & {"running", "terminated"}}
    for ec in spec.get("ephemeralContainers") or []:
        name = ec.get("name", "")
        if name not in latest and name not in reported:
            plan.start.append((ec, False, 0))
    if not _plan_inits(plan, pod, inits, latest, policy, now, started or {}):
        return plan
    for container in spec.get("containers") or []:
        name = container.get("name", "")
        c = latest.get(name)
        if c is None:
            plan.start.append((container, False, 0))
        elif c.state == RUNNING and c.spec_hash and c.spec_hash != spec_hash(container):
            # Only the image may change on a running pod: replace the container.
            plan.remove.append(c.id)
            plan.start.append((container, False, c.restart_count + 1))
        elif c.state == EXITED:
            if should_restart(policy, c):
                _restart_or_wait(plan, pod, container, c, False, now)
        elif c.state != RUNNING:
            # Created but never started (an agent or runtime failure between the two
            # steps; a sync starts what it creates) or unknown: as the kubelet, always a
            # new attempt.
            plan.start.append((container, False, c.restart_count + 1))
    return plan


def _plan_inits(plan: Plan, pod: Obj, inits: list[Obj], latest: dict[str, ContainerState], policy: str,
                now: float, started: dict[str, bool]) -> bool:
    """Init containers one at a time, in order: a regular one must exit 0, a sidecar must
    have started (running, its startupProbe passed) before the next. Once the pod has
    initialized (a regular container exists), only sidecars that exited are restarted,
    with back-off whatever the pod's restartPolicy. True when the regular containers may
    run."""
    regular = {c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []}
    initialized = any(name in regular for name in latest)
    for ic in inits:
        name = ic.get("name", "")
        c = latest.get(name)
        sidecar = is_sidecar(ic)
        if initialized:
            if sidecar and c is None:
                plan.start.append((ic, True, 0))
            elif sidecar and c.state == EXITED:
                _restart_or_wait(plan, pod, ic, c, True, now)
            elif sidecar and c.state in (CREATED, UNKNOWN):
                plan.start.append((ic, True, c.restart_count + 1))
            continue
        if c is None:
            plan.start.append((ic, True, 0))
            return False
        if c.state in (CREATED, UNKNOWN):
            # Left behind between create and start: a new attempt, as for app containers.
            plan.start.append((ic, True, c.restart_count + 1))
            return False
        if sidecar:
            if c.state == RUNNING and (not ic.get("startupProbe") or started.get(name)):
                continue
            if c.state == EXITED:
                _restart_or_wait(plan, pod, ic, c, True, now)
            return False
        if c.state == RUNNING:
            return False
        if c.state == EXITED and c.exit_code == 0:
            continue
        if policy == "Never":
            plan.failed = True
            return False
        _restart_or_wait(plan, pod, ic, c, True, now)
        return False
    return True


def pid_target(container: Obj, containers: list[ContainerState]) -> str:
    """The runtime id of the running container whose processes an ephemeral container's
    `targetContainerName` asks to see; "" for none."""
    target = container.get("targetContainerName")
    c = latest_by_name(containers).get(target) if target else None
    return c.id if c is not None and c.state == RUNNING and not c.ephemeral else ""


def followers(pod: Obj, sandbox: SandboxState, containers: list[ContainerState], sidecar: Obj,
              starting: ContainerState, now: float, started: dict[str, bool], planned: set[str]) -> list[tuple[Obj, bool, int]]:
    """What the next sync would start once `sidecar` runs (`starting`: its container, whose
    start is under way), apart from what is `planned` already. The agent creates these while
    the sidecar starts and starts them only after it, as the kubelet orders them. None for a
    sidecar the next step waits on longer (a startupProbe, a postStart hook), or when that
    sync would kill the pod or make a new sandbox."""
    if not is_sidecar(sidecar) or sidecar.get("startupProbe") or (sidecar.get("lifecycle") or {}).get("postStart"):
        return []
    plan = plan_pod(pod, sandbox, [*containers, starting], now, started)
    if plan.kill_pod or plan.new_sandbox:
        return []
    return [item for item in plan.start if item[0].get("name", "") not in planned]


# -- status -----------------------------------------------------------------------------------


def _ts(seconds: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _container_status(container: Obj, c: ContainerState | None, previous: ContainerState | None,
                      waiting: tuple[str, str] | None, ready_when_running: bool, started: bool = True,
                      default: tuple[str, str] = ("ContainerCreating", "")) -> Obj:
    out: Obj = {"name": container.get("name", ""), "image": container.get("image", ""), "imageID": "",
                "ready": False, "restartCount": 0, "started": False}
    if c is None:
        reason = waiting or default
        out["state"] = {"waiting": {"reason": reason[0], **({"message": reason[1]} if reason[1] else {})}}
        out["lastState"] = {}
        return out
    out["restartCount"] = c.restart_count
    out["imageID"] = c.image_ref
    # The image's normalized name, as the kubelet shows containerd's (docker.io/library/...).
    out["image"] = normalized_name(out["image"])
    out["containerID"] = f"containerd://{c.id}"
    if waiting is not None and c.state == EXITED:
        out["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        out["lastState"] = {"terminated": _terminated(c)}
        return out
    if c.state == RUNNING:
        out["state"] = {"running": {"startedAt": _ts(c.started_at)}}
        out["ready"] = ready_when_running and started
        out["started"] = started
    elif c.state == EXITED:
        out["state"] = {"terminated": _terminated(c)}
    else:
        out["state"] = {"waiting": {"reason": "ContainerCreating"}}
    out["lastState"] = {"terminated": _terminated(previous)} if previous is not None and previous.state == EXITED \
        else {}
    return out


def ephemeral_status(container: Obj, c: ContainerState | None, waiting: tuple[str, str] | None,
                     reported: list[Obj]) -> Obj:
    """An ephemeral container's status: never ready, never restarted; once gone from the
    runtime (a new sandbox), the last reported state stays."""
    if c is None:
        prev = next((s for s in reported if s.get("name") == container.get("name")), None)
        if prev is not None and set(prev.get("state") or {}) & {"running", "terminated"}:
            return prev
    out = _container_status(container, c, None, waiting, False, started=False)
    out.pop("started", None)
    return out


def _terminated(c: ContainerState) -> Obj:
    reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    out: Obj = {"exitCode": c.exit_code, "reason": reason, "containerID": f"containerd://{c.id}"}
    if c.started_at:
        out["startedAt"] = _ts(c.started_at)
    if c.finished_at:
        out["finishedAt"] = _ts(c.finished_at)
    if c.message:
        out["message"] = c.message
    return out


def _condition(old: list[Obj], type_: str, status: str, now: str, reason: str = "", message: str = "") -> Obj:
    prev = next((c for c in old if c.get("type") == type_), None)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else now
    cond: Obj = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def deleted_pod_phase(pod: Obj, containers: list[ContainerState]) -> str | None:
    """The phase a deleted pod ends in once its containers stopped, reported before the
    pod goes (as the kubelet since 1.27): Succeeded when every regular container exited
    with 0, else Failed; None when no container, init ones included, ever ran (the pod
    stays Pending)."""
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if not any(not c.ephemeral for c in containers):
        return None
    latest = latest_by_name([c for c in containers if not c.init and not c.ephemeral])
    ran = [latest[n] for n in names if n in latest]
    if len(ran) == len(names) and all(c.state == EXITED and c.exit_code == 0 for c in ran):
        return "Succeeded"
    return "Failed"


def pod_status(pod: Obj, sandbox: SandboxState | None, containers: list[ContainerState], plan: Plan,
               host_ip: str, now: float, probes: dict[str, tuple[bool, bool]] | None = None) -> Obj:
    """The status the agent reports for `pod` (phase, conditions, container statuses,
    addresses, QoS class), keeping transition times that did not change. `probes`
    gives, per running container or sidecar with probes, (ready, started) as they found."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    policy = spec.get("restartPolicy") or "Always"
    now_s = _ts(now)
    probes = probes or {}
    by_name: dict[str, list[ContainerState]] = {}
    for c in containers:
        by_name.setdefault(c.name, []).append(c)
    for lst in by_name.values():
        lst.sort(key=lambda c: (c.restart_count, c.created_at), reverse=True)

    def pair(name: str) -> tuple[ContainerState | None, ContainerState | None]:
        lst = by_name.get(name) or []
        return (lst[0] if lst else None), (lst[1] if len(lst) > 1 else None)

    inits = spec.get("initContainers") or []
    # As the kubelet: with init containers, a container not created yet is PodInitializing.
    default_wait = ("PodInitializing", "") if inits else ("ContainerCreating", "")
    app = [pair(ct.get("name", ""))[0] for ct in spec.get("containers") or []]
    initialized = any(c is not None for c in app)
    init_statuses = []
    not_initialized: list[str] = []
    unready: list[str] = []
    sidecar_running = False
    for ic in inits:
        name = ic.get("name", "")
        c, prev = pair(name)
        if is_sidecar(ic):
            ready, started = probes.get(name, (True, True))
            st = _container_status(ic, c, prev, plan.waiting.get(name), ready, started, default_wait)
            sidecar_running = sidecar_running or (c is not None and c.state == RUNNING)
            if not st["started"]:
                not_initialized.append(name)
            if not st["ready"]:
                unready.append(name)
        else:
            st = _container_status(ic, c, prev, plan.waiting.get(name), False, default=default_wait)
            if c is not None and c.state == EXITED and c.exit_code == 0:
                st["ready"] = True
            else:
                not_initialized.append(name)
        init_statuses.append(st)
    inits_done = initialized or not not_initialized
    statuses = []
    for container in spec.get("containers") or []:
        name = container.get("name", "")
        c, prev = pair(name)
        ready, started = probes.get(name, (True, True))
        st = _container_status(container, c, prev, plan.waiting.get(name), ready, started, default_wait)
        if not st["ready"]:
            unready.append(name)
        statuses.append(st)
    ephemeral_statuses = [ephemeral_status(ec, pair(ec.get("name", ""))[0], plan.waiting.get(ec.get("name", "")),
                                           old.get("ephemeralContainerStatuses") or [])
                          for ec in spec.get("ephemeralContainers") or []]
    reason = message = ""
    if old.get("phase") in ("Succeeded", "Failed"):
        # A finished pod stays finished, as the kubelet's status manager sees to.
        phase, reason, message = old["phase"], old.get("reason", ""), old.get("message", "")
    elif plan.deadline_exceeded:
        phase, reason = "Failed", "DeadlineExceeded"
        message = "Pod was active on the node longer than the specified deadline"
    elif plan.failed:
        phase = "Failed"
    elif app and all(c is not None and c.state == EXITED for c in app) and policy != "Always" and not plan.start \
            and not plan.waiting:
        # The regular containers decide; the pod turns terminal once its sidecars stopped.
        if sidecar_running:
            phase = "Running"
        else:
            phase = "Succeeded" if all(c.exit_code == 0 for c in app if c) else "Failed"
    elif inits_done and any(c is not None and c.state in (RUNNING, EXITED) for c in app):
        phase = "Running"
    else:
        phase = "Pending"
    old_conds = old.get("conditions") or []
    sandbox_ready = sandbox is not None and sandbox.ready
    done = phase in ("Succeeded", "Failed")
    containers_ready = not unready and bool(statuses) and not done
    if containers_ready:
        ready_reason, ready_message = "", ""
    elif done:
        ready_reason, ready_message = "PodCompleted", ""
    else:
        ready_reason, ready_message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    conds = [
        _condition(old_conds, "PodReadyToStartContainers", "True" if sandbox_ready else "False", now_s),
        _condition(old_conds, "Initialized", "True" if inits_done else "False", now_s,
                   "" if inits_done else "ContainersNotInitialized",
                   "" if inits_done else f"containers with incomplete status: [{' '.join(not_initialized)}]"),
    ]
    gates = readiness_gates_message(pod, old_conds) if containers_ready else ""
    if gates:
        conds.append(_condition(old_conds, "Ready", "False", now_s, "ReadinessGatesNotReady", gates))
    else:
        conds.append(_condition(old_conds, "Ready", "True" if containers_ready else "False", now_s, ready_reason,
                                ready_message))
    conds.append(_condition(old_conds, "ContainersReady", "True" if containers_ready else "False", now_s,
                            ready_reason, ready_message))
    conds += [c for c in old_conds if c.get("type") not in {x["type"] for x in conds}]
    status: Obj = {"phase": phase, "conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                   "startTime": old.get("startTime") or now_s, "containerStatuses": statuses,
                   "qosClass": qos_class(pod)}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if ephemeral_statuses:
        status["ephemeralContainerStatuses"] = ephemeral_statuses
    ip = sandbox.ip if sandbox is not None else old.get("podIP")
    if spec.get("hostNetwork"):
        ip = host_ip
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}] + [{"ip": x} for x in (sandbox.ips if sandbox else []) if x != ip]
    return status
