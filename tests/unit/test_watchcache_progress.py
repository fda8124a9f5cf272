"""The watch cache on etcd keeps up with the store's revision when writes land outside
the prefix it watches (bootstrap data, another cluster's keys): etcd's progress
notifications carry it there, so a read waiting for "everything written so far" does
not wait in vain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from kybernetes.apiserver.watchcache import WatchCache, encode_for_store
from kybernetes.storage.encryption import EncryptingStore, EncryptionConfig
from kybernetes.storage.etcd import EtcdStore
from kybernetes.testing.etcd import EtcdProcess, etcd_binary


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdProcess]:
    if etcd_binary() is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (scripts/install.sh does)")
    proc = EtcdProcess()
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def store(etcd: EtcdProcess) -> AsyncIterator[EtcdStore]:
    s = EtcdStore([etcd.url], prefix="/progress")
    await s.start()
    yield s
    await s.close()


async def test_a_write_outside_the_watched_prefix_does_not_stall_reads(store: EtcdStore) -> None:
    cache = WatchCache(store)
    await cache.start()
    try:
        await store.create("/registry/configmaps/default/a", encode_for_store({"metadata": {"name": "a"}}))
        await store.create("/bootstrap/data", b"opaque")
        wanted = store.current_revision()
        assert cache.revision < wanted or cache.revision == wanted
        # The progress request answers in milliseconds; etcd's own timer would take minutes.
        await asyncio.wait_for(cache.wait_for(wanted, timeout=3.0), 4.0)
        assert cache.revision >= wanted
        assert cache.get("/registry/configmaps/default/a") is not None
    finally:
        await cache.close()


async def test_the_encrypting_store_passes_bookmarks_through(store: EtcdStore) -> None:
    enc = EncryptingStore(store, EncryptionConfig([]))
    cache = WatchCache(enc)
    await cache.start()
    try:
        await store.create("/elsewhere/key", b"x")
        await asyncio.wait_for(cache.wait_for(store.current_revision(), timeout=3.0), 4.0)
        assert cache.revision >= store.current_revision()
    finally:
        await cache.close()
