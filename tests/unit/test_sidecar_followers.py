"""What the agent creates while a native sidecar starts (`podsync.followers`): the
containers the next step would start once the sidecar runs, and nothing when that step
must wait longer for the sidecar or would not start containers at all."""

from __future__ import annotations

from kybernetes.agent import podsync
from kybernetes.testing import fakes

SANDBOX = podsync.SandboxState("sb", True, 0, 90.0, "10.42.0.5", ["10.42.0.5"])
SIDECAR = {"name": "side", "image": "busybox:1.35", "restartPolicy": "Always"}
INIT = {"name": "setup", "image": "busybox:1.35"}


def pod(**spec):
    return fakes.pod("p", "ns", uid="u1", image="busybox:1.35", **spec)


def starting(name="side"):
    return podsync.ContainerState(f"id-{name}", name, podsync.RUNNING, 0, "", init=True, created_at=100.0)


def names(items):
    return [c["name"] for c, _init, _n in items]


def test_the_app_container_follows_a_sidecar_without_a_startup_probe():
    p = pod(initContainers=[SIDECAR])
    assert names(podsync.followers(p, SANDBOX, [], SIDECAR, starting(), 100, {}, {"side"})) == ["c"]


def test_the_next_init_container_follows_and_nothing_after_it():
    second = {**SIDECAR, "name": "side2"}
    p = pod(initContainers=[SIDECAR, INIT, second])
    assert names(podsync.followers(p, SANDBOX, [], SIDECAR, starting(), 100, {}, {"side"})) == ["setup"]
    # Two sidecars in a row: only the second follows the first; the app waits for the second.
    p = pod(initContainers=[SIDECAR, second])
    assert names(podsync.followers(p, SANDBOX, [], SIDECAR, starting(), 100, {}, {"side"})) == ["side2"]


def test_nothing_follows_a_sidecar_the_next_step_waits_on_longer():
    probed = {**SIDECAR, "startupProbe": {"exec": {"command": ["true"]}}}
    hooked = {**SIDECAR, "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}}
    for sidecar in (probed, hooked):
        p = pod(initContainers=[sidecar])
        assert podsync.followers(p, SANDBOX, [], sidecar, starting(), 100, {}, {"side"}) == []
    # A regular init container is no sidecar: the next waits for it to exit.
    p = pod(initContainers=[INIT])
    assert podsync.followers(p, SANDBOX, [], INIT, starting("setup"), 100, {}, {"setup"}) == []


def test_what_is_planned_already_or_a_pod_being_deleted_gets_no_followers():
    p = pod(initContainers=[SIDECAR])
    assert podsync.followers(p, SANDBOX, [], SIDECAR, starting(), 100, {}, {"side", "c"}) == []
    p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert podsync.followers(p, SANDBOX, [], SIDECAR, starting(), 100, {}, {"side"}) == []
