"""The phase a deleted pod's last status reports once the agent stopped its containers
(the kubelet since 1.27): watchers see it end Succeeded or Failed, not vanish Running."""

from __future__ import annotations

from kybernetes.agent import podsync


def _pod(*names: str, restart: str = "Always") -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": restart, "containers": [{"name": n, "image": "busybox"} for n in names]}}


def _exited(name: str, code: int, init: bool = False) -> podsync.ContainerState:
    return podsync.ContainerState("id-" + name, name, podsync.EXITED, 0, "", init=init, started_at=100.0,
                                  finished_at=110.0, exit_code=code, reason="Completed" if code == 0 else "Error")


def test_a_killed_container_makes_the_deleted_pod_failed() -> None:
    assert podsync.deleted_pod_phase(_pod("a", "b"), [_exited("a", 0), _exited("b", 137)]) == "Failed"


def test_every_container_exiting_zero_makes_it_succeeded_whatever_the_restart_policy() -> None:
    assert podsync.deleted_pod_phase(_pod("a", "b"), [_exited("a", 0), _exited("b", 0)]) == "Succeeded"
    # One that never ran is not a success.
    assert podsync.deleted_pod_phase(_pod("a", "b"), [_exited("a", 0)]) == "Failed"


def test_a_pod_whose_containers_never_ran_stays_pending() -> None:
    assert podsync.deleted_pod_phase(_pod("a"), []) is None


def test_a_pod_stopped_in_its_init_containers_is_failed() -> None:
    assert podsync.deleted_pod_phase(_pod("a"), [_exited("init", 137, init=True)]) == "Failed"
    assert podsync.deleted_pod_phase(_pod("a"), [_exited("init", 0, init=True)]) == "Failed"


def test_the_final_status_shows_the_containers_terminated() -> None:
    pod = _pod("a", restart="Never")
    containers = [_exited("a", 137)]
    status = podsync.pod_status(pod, None, containers, podsync.Plan(failed=True), "192.0.2.1", 200.0, {})
    state = status["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 137 and status["phase"] == "Failed"
    assert not status["containerStatuses"][0]["ready"]
