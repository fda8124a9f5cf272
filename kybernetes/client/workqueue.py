"""A rate-limited work queue of keys, with the semantics controllers rely on.

A key is queued at most once; a key being processed is not handed to a second
worker; a key added while processing is queued again when `done` is called.
Failed keys come back after a per-key exponential backoff (5 ms doubling up to
1000 s) until `forget` resets it.

`run_workers` is the loop every controller runs over its queue: sync a key,
forget it on success, requeue it with backoff on failure, never die.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from kybernetes.api.errors import ApiError

log = logging.getLogger(__name__)


class WorkQueue:
    BASE_DELAY = 0.005
    MAX_DELAY = 1000.0

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._queue: collections.deque[str] = collections.deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None:
            if existing.when() <= loop.time() + delay:
                return
            existing.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.BASE_DELAY * (2 ** n), self.MAX_DELAY))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        while not self._queue:
            if self._shutdown:
                raise asyncio.CancelledError()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        self._shutdown = True
        for t in self._timers.values():
            t.cancel()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)


def failure_log_level(err: BaseException, quiet_codes: tuple[int, ...] = (404, 409),
                      quiet: tuple[type[BaseException], ...] = (),
                      expected: tuple[type[BaseException], ...] = (),
                      level: int = logging.WARNING) -> tuple[int, bool]:
    """How loudly a failed sync is logged: (log level, whether to include the traceback).

    Quiet failures (ApiError codes in `quiet_codes`, `quiet` types) are routine, e.g.
    an informer lagging our own writes, so they go to debug. Other ApiErrors and
    `expected` types are at `level`. Anything else is a bug: warning with traceback."""
    if isinstance(err, quiet) or (isinstance(err, ApiError) and err.code in quiet_codes):
        return logging.DEBUG, False
    if isinstance(err, (ApiError, *expected)):
        return level, False
    return logging.WARNING, True


async def run_workers(queue: WorkQueue, sync: Callable[[str], Awaitable[object]], workers: int, name: str,
                      quiet_codes: tuple[int, ...] = (404, 409), *,
                      quiet: tuple[type[BaseException], ...] = (),
                      expected: tuple[type[BaseException], ...] = (),
                      level: int = logging.WARNING, logger: logging.Logger | None = None) -> None:
    """Run `workers` (at least one) tasks that each take keys from `queue` and `sync` them,
    until cancelled; then the workers are cancelled and the queue shut down.

    A key whose sync succeeds is forgotten (its backoff reset); one whose sync raises
    is logged (see `failure_log_level`; `name` leads the line) and requeued with backoff.
    Passing `logger` keeps the log lines under the caller's module name."""
    out = logger or log

    async def work() -> None:
        while True:
            key = await queue.get()
            try:
                await sync(key)
                queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a failed key retries; the worker lives on
                lvl, trace = failure_log_level(e, quiet_codes, quiet, expected, level)
                out.log(lvl, "%s %s: %s; retrying", name, key, e, exc_info=trace)
                queue.add_rate_limited(key)
            finally:
                queue.done(key)

    try:
        # A TaskGroup cancels and awaits every worker when we are cancelled.
        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, workers)):
                tg.create_task(work())
    finally:
        queue.shutdown()
