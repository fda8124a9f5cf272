"""Leader-election flags of the components and `kyb server`, and the same-name takeover."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from click.testing import CliRunner

from kybernetes.api.timefmt import rfc3339_micro
from kybernetes.cli.leader_flags import LeaderElectionTimes, checked_times
from kybernetes.cli.main import main
from kybernetes.client.leaderelection import LeaderElector
from kybernetes.client.resources import LEASES
from kybernetes.testing.fakes import FakeClient


def test_times_that_work_together_are_kept_and_given_to_a_child_as_flags():
    times = checked_times(8, 5, 1)
    assert times == LeaderElectionTimes(8, 5.0, 1.0)
    assert times.argv() == ["--leader-elect-lease-duration", "8s", "--leader-elect-renew-deadline", "5s",
                            "--leader-elect-retry-period", "1s"]
    # A Lease holds whole seconds: never shorter than asked.
    assert checked_times(7.5, 5, 1).lease_duration == 8


@pytest.mark.parametrize(("lease", "renew", "retry", "words"), [
    (15, 10, 0, "retry-period must be greater than zero"),
    (15, 2, 2, "renew-deadline must be greater than 1.2 times"),
    (10, 10, 2, "lease-duration must be greater than --leader-elect-renew-deadline"),
])
def test_times_that_cannot_work_are_refused_with_the_reason(lease, renew, retry, words):
    with pytest.raises(ValueError, match=words):
        checked_times(lease, renew, retry)


@pytest.mark.parametrize("command", [["scheduler"], ["controller-manager"], ["server", "--data-dir", "{tmp}/d"]])
def test_each_command_refuses_bad_times_before_it_starts(command, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    if argv[0] != "server":
        argv += ["--kubeconfig", str(tmp_path / "missing")]
    runner = CliRunner()
    bad = runner.invoke(main, [*argv, "--leader-elect-renew-deadline", "1s"])
    assert bad.exit_code == 2 and "renew-deadline must be greater than 1.2 times" in bad.output
    worse = runner.invoke(main, [*argv, "--leader-elect-lease-duration", "soon"])
    assert worse.exit_code == 2 and "not a duration: 'soon'" in worse.output
    assert not (tmp_path / "d").exists()  # the server made nothing


async def _leads_within(elector: LeaderElector, seconds: float) -> bool:
    began = asyncio.Event()

    async def work() -> None:
        began.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(elector.run(work))
    try:
        await asyncio.wait_for(began.wait(), seconds)
        return True
    except TimeoutError:
        return False
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_restarted_child_with_its_predecessors_name_leads_at_once_a_stranger_waits():
    client = FakeClient()
    now = rfc3339_micro(dt.datetime.now(dt.UTC))
    client.add(LEASES, {"metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                        "spec": {"holderIdentity": "host_100", "leaseDurationSeconds": 15, "acquireTime": now,
                                 "renewTime": now, "leaseTransitions": 3}})
    stranger = LeaderElector(client, "kube-system", "kube-scheduler", "host_200", retry_period=0.05)
    assert not await _leads_within(stranger, 0.3)
    same = LeaderElector(client, "kube-system", "kube-scheduler", "host_100", retry_period=0.05)
    assert await _leads_within(same, 0.3)
    spec = client.objects[("leases", "kube-system", "kube-scheduler")]["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("host_100", 3)
