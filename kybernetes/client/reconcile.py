"""What one reconcile pass tells its work queue, as controller-runtime's `reconcile.Result`.

A sync function returns a `Result`: done (the key's back-off is reset), requeue
(rate-limited: the key's back-off grows, bounded by the queue's overall rate), or
requeue after N seconds (back-off reset, the key comes back then). Raising is the
fourth outcome: the failure is logged and the key requeued rate-limited.

There is no "requeue now": a key that asks to come back at once gets the rate limiter,
so a reconcile that cannot make progress backs off instead of spinning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Result:
    """`requeue_after` > 0 wins over `requeue`, as in controller-runtime."""

    requeue: bool = False
    requeue_after: float = 0.0

    @classmethod
    def done(cls) -> Result:
        return _DONE

    @classmethod
    def rate_limited(cls) -> Result:
        return _RATE_LIMITED

    @classmethod
    def after(cls, seconds: float) -> Result:
        """Come back in `seconds`; a delay of zero or less is a rate-limited requeue."""
        if seconds <= 0:
            return _RATE_LIMITED
        return cls(requeue_after=float(seconds))

    @classmethod
    def after_or_done(cls, seconds: float | None) -> Result:
        return _DONE if seconds is None else cls.after(seconds)

    @property
    def is_done(self) -> bool:
        return not self.requeue and self.requeue_after <= 0


_DONE = Result()
_RATE_LIMITED = Result(requeue=True)


SyncFn = Callable[[str], Awaitable["Result | None"]]
"""A reconcile function over one key. None is accepted as done, for callers that predate `Result`."""


class Reconciler(Protocol):
    async def sync(self, key: str) -> Result: ...
