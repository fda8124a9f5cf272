"""The store interface every backend implements (SQLite now, etcd v3 later).

A store is a multi-version key-value map with one global revision counter.
Every successful write gets the next revision; that revision is the object's
`resourceVersion`. Values are opaque bytes to the store. History is kept until
`compact`, so `get`/`list` can read at a past revision, and `watch` can replay
every change after a revision, in order.

The API server (and its watch cache) only uses this module's types; it never
imports a backend. A backend is whatever satisfies `Store`: the SQLite one is
`storage.logstore.LogStore` (etcd semantics) over `storage.sqlite.SQLiteDriver`;
an etcd v3 backend maps each method onto one etcd call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

EventType = Literal["PUT", "DELETE"]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int  # revision of the write that produced this value
    create_revision: int  # revision at which this key was (last) created


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETE, `kv.value` is the last value and `kv.mod_revision`
    the revision of the delete; `prev` is the value before the change, if any."""

    type: EventType  # "PUT" (create or update) or "DELETE"
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


class StorageFullError(StoreError):
    """A write refused because the disk (or the backend's quota) is full; nothing was
    stored, and writes work again once space is freed (etcd: "database space exceeded")."""


@runtime_checkable
class WatchStream(Protocol):
    """The changes of one watch, in revision order, in batches (the events of one
    commit, or of one replayed page). Iteration ends when the store closes; `aclose`
    ends it early and frees what the watch holds."""

    def __aiter__(self) -> AsyncIterator[list[Event]]: ...

    async def __anext__(self) -> list[Event]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    async def start(self) -> None:
        """Open the backend; afterwards `current_revision` is the newest committed revision."""
        ...

    async def close(self) -> None:
        """Stop accepting calls; open watches end."""
        ...

    def current_revision(self) -> int:
        """The newest revision whose events every new watch and read can see."""
        ...

    def compacted_revision(self) -> int:
        """History at revisions below this is gone (0: nothing compacted)."""
        ...

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """The value at `revision` (0: newest). CompactedError / FutureRevisionError
        for a revision outside the kept history."""
        ...

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        """Live keys under `prefix` at `revision` (0: newest), in key order, after `start_after`,
        at most `limit` of them (0: all)."""
        ...

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a key that is absent (KeyExistsError otherwise)."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        """Replace a present key; with expected_revision != 0 only if it is the key's mod
        revision (RevisionMismatchError otherwise, carrying the current value)."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Remove a present key; returns the deleted value with the delete's revision."""
        ...

    def watch(self, prefix: str, from_revision: int) -> WatchStream:
        """Every change under `prefix` with revision > from_revision, in order, then live
        changes until the stream is closed. Raises CompactedError at once if
        from_revision is below the compaction point."""
        ...

    async def compact(self, revision: int) -> None:
        """Drop history older than `revision` (the newest value of each key is kept)."""
        ...
