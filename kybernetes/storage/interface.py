"""The store interface every backend implements (SQLite now, etcd v3 later).

A store is a multi-version key-value map with one global revision counter.
Every successful write gets the next revision; that revision is the object's
`resourceVersion`. Values are opaque bytes to the store. History is kept until
`compact`, so `get`/`list` can read at a past revision, and `watch` can replay
every change after a revision, in order.

The API server only uses this module's types; it never imports a backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int  # revision of the write that produced this value
    create_revision: int  # revision at which this key was (last) created


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETED, `kv.value` is the last value and `kv.mod_revision`
    the revision of the delete; `prev` is the value before the change, if any."""

    type: str  # "PUT" (create or update) or "DELETE"
    kv: KeyValue
    prev: KeyValue | None
    created: bool = False  # PUT that created the key


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the store revision the list was read at
    more: bool  # true when `limit` cut the result short


class StoreError(Exception):
    """Base of store failures."""


class KeyExistsError(StoreError):
    """create() of a key that is present."""


class KeyNotFoundError(StoreError):
    """update()/delete() of a key that is absent."""


class RevisionMismatchError(StoreError):
    """update()/delete() whose expected revision is not the key's current mod revision."""

    def __init__(self, current: KeyValue) -> None:
        super().__init__(f"revision mismatch: current {current.mod_revision}")
        self.current = current


class CompactedError(StoreError):
    """A read or watch at a revision older than the compaction point."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"required revision {requested} has been compacted (compacted at {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """A read at a revision the store has not reached yet."""


class Store(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def current_revision(self) -> int: ...

    def compacted_revision(self) -> int: ...

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """The value at `revision` (0: newest)."""
        ...

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        """Live keys under `prefix` at `revision` (0: newest), in key order, after `start_after`."""
        ...

    async def create(self, key: str, value: bytes) -> KeyValue: ...

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        """Replace a present key; with expected_revision != 0 only if it is the key's mod revision."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Remove a present key; returns the deleted value with the delete's revision."""
        ...

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        """Every change under `prefix` with revision > from_revision, in order, then live
        changes until the iterator is closed. Raises CompactedError if from_revision
        is below the compaction point."""
        ...

    async def compact(self, revision: int) -> None:
        """Drop history older than `revision` (the newest value of each key is kept)."""
        ...
