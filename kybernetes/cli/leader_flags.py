"""The leader-election flags of the controller manager and the scheduler.

Named and defaulted as kube-controller-manager and kube-scheduler name them
(`--leader-elect-lease-duration 15s`, `--leader-elect-renew-deadline 10s`,
`--leader-elect-retry-period 2s`). `kyb server` takes the same three and hands them to
the children it starts, with an identity of its own making: the server's host and
process id, which stays the same when it restarts a child that died. A restarted child
thus finds its own name on the lease and leads again at once instead of waiting out
the dead one's lease; only the server that started both can know the first is gone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from collections.abc import Callable
from typing import Any

import click

from kybernetes.api.kinds.batch import go_duration_seconds

_KEY = "leader_election"
# client-go refuses a renew deadline within this factor of the retry period.
_JITTER = 1.2


@dataclasses.dataclass(frozen=True)
class LeaderElectionTimes:
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def argv(self) -> list[str]:
        """The flags that give a child component these times."""
        return ["--leader-elect-lease-duration", f"{self.lease_duration}s",
                "--leader-elect-renew-deadline", f"{self.renew_deadline:g}s",
                "--leader-elect-retry-period", f"{self.retry_period:g}s"]


def checked_times(lease_duration: float, renew_deadline: float, retry_period: float) -> LeaderElectionTimes:
    """The times, or ValueError with client-go's reasons when they cannot work together."""
    if retry_period <= 0:
        raise ValueError("--leader-elect-retry-period must be greater than zero")
    if renew_deadline <= _JITTER * retry_period:
        raise ValueError(f"--leader-elect-renew-deadline must be greater than {_JITTER} times "
                         "--leader-elect-retry-period")
    if lease_duration <= renew_deadline:
        raise ValueError("--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline")
    # A Lease holds whole seconds; rounding up never shortens what the holder was promised.
    return LeaderElectionTimes(math.ceil(lease_duration), renew_deadline, retry_period)


def process_identity() -> str:
    """This process's name in a lease: host name and process id. `kyb server` gives its own to
    the children it starts, so that it stays the same across their restarts."""
    return f"{socket.gethostname()}_{os.getpid()}"


def _keep(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if name != "identity":
            seconds = go_duration_seconds(value.strip())
            if seconds is None or seconds < 0:
                raise click.BadParameter(f"not a duration: {value!r} (e.g. 15s, 500ms, 1m)", ctx, param)
            value = seconds
        ctx.meta.setdefault(_KEY, {})[name] = value

    return store


_TIMES = (("--leader-elect-lease-duration", "lease_duration", "15s",
           "How long a non-leader waits, after the leader's last renewal, before it may take the lease."),
          ("--leader-elect-renew-deadline", "renew_deadline", "10s",
           "How long the leader keeps trying to renew before it stops leading."),
          ("--leader-elect-retry-period", "retry_period", "2s",
           "Between attempts to take or renew the lease."))


def leader_election_flags(identity: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds the three times (and, for a component, `--leader-elect-identity`) to a command."""
    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        if identity:
            f = click.option("--leader-elect-identity", default="", expose_value=False, callback=_keep("identity"),
                             help="This process's name in the lease [default: host name and process id].")(f)
        for flag, name, default, text in reversed(_TIMES):
            f = click.option(flag, default=default, show_default=True, metavar="DURATION", expose_value=False,
                             callback=_keep(name), help=text)(f)
        return f

    return add


def leader_election_times(ctx: click.Context) -> LeaderElectionTimes:
    """The times the command was given; exits with a usage error when they do not fit together."""
    flags: dict[str, Any] = ctx.meta.get(_KEY, {})
    default = LeaderElectionTimes()
    try:
        return checked_times(flags.get("lease_duration", default.lease_duration),
                             flags.get("renew_deadline", default.renew_deadline),
                             flags.get("retry_period", default.retry_period))
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def leader_election_identity(ctx: click.Context) -> str:
    """The identity the command was given, or this process's own."""
    return ctx.meta.get(_KEY, {}).get("identity") or process_identity()
