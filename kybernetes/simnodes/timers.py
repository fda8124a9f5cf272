"""One heap of deadlines for every delayed action of the simulator.

Thousands of pods and nodes each owe an action at some time; a single heap
with lazy deletion replaces per-object timers, so scheduling, rescheduling and
cancelling are O(log n) and the event loop wakes once per batch of due work.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any


class TimerHeap:
    """Deadlines keyed by an arbitrary hashable; at most one live deadline per key."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, tuple[float, int, Any]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def due_of(self, key: Hashable) -> float | None:
        entry = self._live.get(key)
        return entry[0] if entry is not None else None

    def payload_of(self, key: Hashable) -> Any:
        entry = self._live.get(key)
        return entry[2] if entry is not None else None

    def schedule(self, key: Hashable, due: float, payload: Any = None, keep_earlier: bool = False) -> bool:
        """Set the deadline of `key`. With `keep_earlier`, an existing earlier deadline for the
        same payload wins, so repeated notifications about one object do not postpone it.
        Returns whether the deadline changed."""
        entry = self._live.get(key)
        if entry is not None and keep_earlier and entry[2] == payload and entry[0] <= due:
            return False
        self._seq += 1
        self._live[key] = (due, self._seq, payload)
        heapq.heappush(self._heap, (due, self._seq, key))
        self._compact_if_bloated()
        return True

    def cancel(self, key: Hashable) -> bool:
        return self._live.pop(key, None) is not None

    def next_due(self) -> float | None:
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[Hashable, Any]]:
        """Remove and return (key, payload) of deadlines at or before `now`, earliest first."""
        out: list[tuple[Hashable, Any]] = []
        while self._heap and (limit is None or len(out) < limit):
            due, seq, key = self._heap[0]
            entry = self._live.get(key)
            if entry is None or entry[1] != seq:
                heapq.heappop(self._heap)
                continue
            if due > now:
                break
            heapq.heappop(self._heap)
            del self._live[key]
            out.append((key, entry[2]))
        return out

    def _drop_stale_head(self) -> None:
        while self._heap:
            _, seq, key = self._heap[0]
            entry = self._live.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(self._heap)

    def _compact_if_bloated(self) -> None:
        # Rescheduling leaves dead entries behind; rebuild once they dominate.
        if len(self._heap) > 1024 and len(self._heap) > 4 * len(self._live):
            self._heap = [(due, seq, key) for key, (due, seq, _) in self._live.items()]
            heapq.heapify(self._heap)
