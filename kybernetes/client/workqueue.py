"""A rate-limited work queue of keys, with the semantics controllers rely on.

A key is queued at most once; a key being processed is not handed to a second
worker; a key added while processing is queued again when `done` is called.
`add_rate_limited` delays a key by client-go's default controller rate limiter: the
larger of a per-key exponential back-off (5 ms doubling up to 1000 s, reset by
`forget`) and an overall token bucket (10 per second, bursts of 100) shared by every
key of the queue, so one key that keeps failing or asking to come back cannot spin.

`run_workers` is the loop every controller runs over its queue: sync a key, act on
the `Result` it returns (done, rate-limited requeue, requeue after N seconds), requeue
it rate-limited when it raises, never die, and give the event loop back between keys
so that one controller's work cannot starve another's.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Protocol

from kybernetes.api.errors import ApiError
from kybernetes.client.reconcile import Result, SyncFn

log = logging.getLogger(__name__)


# -- rate limiters ---------------------------------------------------------------------


class RateLimiter(Protocol):
    def when(self, key: str) -> float:
        """Seconds `key` should wait before it is processed again; counts a requeue."""
        ...

    def forget(self, key: str) -> None: ...

    def requeues(self, key: str) -> int: ...


class ItemExponentialBackoff:
    """base * 2^n seconds for a key's n-th requeue since it was last forgotten, capped."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # Past 2^60 the product overflows nothing in Python but is far past any cap.
        return self.cap if n > 60 else min(self.base * (2 ** n), self.cap)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class TokenBucket:
    """An overall limit for the whole queue: `qps` tokens a second, at most `burst` saved up.
    Each requeue takes a token now or reserves the next free one and waits for it."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, key: str) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: str) -> None:
        pass

    def requeues(self, key: str) -> int:
        return 0


class MaxOf:
    """The longest wait any of `limiters` asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, key: str) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: str) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def requeues(self, key: str) -> int:
        return max(limiter.requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter() -> RateLimiter:
    """client-go's DefaultControllerRateLimiter: per-key 5 ms..1000 s back-off, overall 10/s burst 100."""
    return MaxOf(ItemExponentialBackoff(0.005, 1000.0), TokenBucket(10.0, 100))


# -- the queue -------------------------------------------------------------------------


class WorkQueue:
    def __init__(self, name: str = "", rate_limiter: RateLimiter | None = None) -> None:
        self.name = name
        self.rate_limiter = rate_limiter or default_controller_rate_limiter()
        self._queue: collections.deque[str] = collections.deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._shutdown = False
        # The longest a sync of this queue kept the event loop between two awaits (seconds).
        self.longest_hold = 0.0

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed or delayed)."""
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
        """Add `key` in `delay` seconds; an earlier pending add of the same key stands."""
        if self._shutdown:
            return
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
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: str) -> None:
        self.rate_limiter.forget(key)

    def failures(self, key: str) -> int:
        """How many rate-limited requeues `key` has had since it was last forgotten."""
        return self.rate_limiter.requeues(key)

    def pending(self, key: str) -> bool:
        """Whether `key` is queued or due to be added later (for tests and diagnostics)."""
        return key in self._dirty or key in self._timers

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
        self._timers.clear()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)


# A sync that keeps the event loop this long between two awaits is worth a warning: every
# other controller, the informers and the leader lease wait for it.
SLOW_HOLD_SECONDS = 0.1


class _HoldTimer:
    """Await a coroutine and keep the longest of its synchronous steps, i.e. how long it
    held the event loop at a stretch."""

    __slots__ = ("coro", "longest")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            t = time.perf_counter()
            try:
                yielded = self.coro.send(value) if error is None else self.coro.throw(error)
            except StopIteration as stop:
                self.longest = max(self.longest, time.perf_counter() - t)
                return stop.value
            finally:
                value, error = None, None
            self.longest = max(self.longest, time.perf_counter() - t)
            try:
                value = yield yielded
            except GeneratorExit:
                self.coro.close()
                raise
            except BaseException as e:  # noqa: BLE001 - handed on to the coroutine (cancellation too)
                error = e


async def _timed(queue: WorkQueue, pending: Awaitable[Result | None], name: str, key: str,
                 out: logging.Logger) -> Result | None:
    """Await one sync, noting in `queue.longest_hold` (and the log, when it is long) how
    long it kept the event loop at a stretch."""
    if not asyncio.iscoroutine(pending):
        return await pending
    timer = _HoldTimer(pending)
    try:
        return await timer
    finally:
        queue.longest_hold = max(queue.longest_hold, timer.longest)
        if timer.longest >= SLOW_HOLD_SECONDS:
            out.warning("%s %s: the sync held the event loop for %.0f ms at a stretch", name, key,
                        timer.longest * 1e3)


def handle_result(queue: WorkQueue, key: str, result: Result | None) -> None:
    """Tell `queue` what a successful sync of `key` asked for (controller-runtime's rules)."""
    if result is None or result.is_done:
        queue.forget(key)
    elif result.requeue_after > 0:
        queue.forget(key)
        queue.add_after(key, result.requeue_after)
    else:
        queue.add_rate_limited(key)


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


async def run_workers(queue: WorkQueue, sync: SyncFn, workers: int, name: str,
                      quiet_codes: tuple[int, ...] = (404, 409), *,
                      quiet: tuple[type[BaseException], ...] = (),
                      expected: tuple[type[BaseException], ...] = (),
                      level: int = logging.WARNING, logger: logging.Logger | None = None) -> None:
    """Run `workers` (at least one) tasks that each take keys from `queue` and `sync` them,
    until cancelled; then the workers are cancelled and the queue shut down.

    The `Result` a sync returns decides what happens to its key (see `handle_result`);
    a sync that raises is logged (see `failure_log_level`; `name` leads the line) and
    requeued rate-limited. Passing `logger` keeps the log lines under the caller's module name."""
    out = logger or log

    async def work() -> None:
        while True:
            key = await queue.get()
            try:
                handle_result(queue, key, await _timed(queue, sync(key), name, key, out))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a failed key retries; the worker lives on
                lvl, trace = failure_log_level(e, quiet_codes, quiet, expected, level)
                out.log(lvl, "%s %s: %s; retrying", name, key, e, exc_info=trace)
                queue.add_rate_limited(key)
            finally:
                queue.done(key)
            # A sync that never awaited anything (all from caches, nothing to write) and a
            # queue that is never empty would otherwise keep this worker on the event loop
            # for ever, and every other controller, informer and lease with it.
            await asyncio.sleep(0)

    try:
        # A TaskGroup cancels and awaits every worker when we are cancelled.
        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, workers)):
                tg.create_task(work())
    finally:
        queue.shutdown()
