"""The kubelet's image decisions, as pure functions: when a container's image is pulled
(`imagePullPolicy`), and the words of the events and waiting reasons that say so.

* Always: pulled before every start of the container, present or not (the registry
  decides which digest the tag names now); a failed pull fails the start.
* IfNotPresent: pulled only when the runtime does not have it.
* Never: never pulled; a missing image is ErrImageNeverPull.
* No policy: Always for `:latest` or an untagged name, IfNotPresent otherwise (the API
  server defaults it so; an object written before defaulting may lack it)."""

from __future__ import annotations

import grpc

ALWAYS, IF_NOT_PRESENT, NEVER = "Always", "IfNotPresent", "Never"


def effective_policy(image: str, policy: str) -> str:
    if policy:
        return policy
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return IF_NOT_PRESENT
    return ALWAYS if ":" not in last or last.endswith(":latest") else IF_NOT_PRESENT


def should_pull(policy: str, present: bool) -> bool:
    """Upstream's shouldPullImage."""
    if policy == NEVER:
        return False
    return policy == ALWAYS or not present


def go_duration(seconds: float) -> str:
    """A duration as Go prints a `time.Duration` cut to milliseconds ("313ms", "1.594s",
    "1m2.5s"), as the kubelet's pull events show it."""
    ms = max(0, int(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if not minutes:
        return secs
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}"


def pulled_message(image: str, pulled_in: float, with_waiting: float, size: int) -> str:
    return (f'Successfully pulled image "{image}" in {go_duration(pulled_in)} '
            f"({go_duration(with_waiting)} including waiting). Image size: {size} bytes.")


def present_message(image: str) -> str:
    return f'Container image "{image}" already present on machine'


def never_pull_message(image: str) -> str:
    return f'Container image "{image}" is not present with pull policy of Never'


def back_off_message(image: str) -> str:
    return f'Back-off pulling image "{image}"'


def rpc_error(code: grpc.StatusCode, details: str) -> str:
    """A CRI failure as Go's gRPC status error prints it, which the kubelet's events quote."""
    name = "".join(part.capitalize() for part in code.name.split("_"))
    return f"rpc error: code = {name} desc = {details}"


def sandbox_failed_message(error: str) -> str:
    """The FailedCreatePodSandBox event of a sandbox the runtime refused."""
    return f"Failed to create pod sandbox: {error}"


def normalized_name(image: str) -> str:
    """An image reference as containerd names it ("busybox:1.35" is
    "docker.io/library/busybox:1.35"; no tag is ":latest"), which the kubelet shows in
    `containerStatuses[].image`. Worked out from the pod's own reference rather than taken
    from the runtime, which shows the first of all the tags the image has on the node."""
    if not image:
        return image
    first, sep, rest = image.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        first, rest = "docker.io", image
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    last = rest.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        rest += ":latest"
    return f"{first}/{rest}"
