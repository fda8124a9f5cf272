"""A rate-limited work queue of keys, with the semantics controllers rely on.

A key is queued at most once; a key being processed is not handed to a second
worker; a key added while processing is queued again when `done` is called.
Failed keys come back after a per-key exponential backoff (5 ms doubling up to
1000 s) until `forget` resets it.
"""

from __future__ import annotations

import asyncio
import collections


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
            while self._waiters:
                w = self._waiters.popleft()
                if not w.done():
                    w.set_result(None)
                    break

    def shutdown(self) -> None:
        self._shutdown = True
        for t in self._timers.values():
            t.cancel()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
