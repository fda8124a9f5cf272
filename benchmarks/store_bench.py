"""Rough write throughput of the SQLite store: sequential and 16-concurrent creates,
with and without fsync. Run by hand: `.venv/bin/python benchmarks/store_bench.py`."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kybernetes.storage.sqlite import SQLiteStore  # noqa: E402

VALUE = b"x" * 1024  # about the size of a small serialized object


async def sequential(store: SQLiteStore, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await store.create(f"/registry/seq/{i}", VALUE)
    return n / (time.perf_counter() - start)


async def concurrent(store: SQLiteStore, n: int, workers: int) -> float:
    async def worker(w: int) -> None:
        for i in range(w, n, workers):
            await store.create(f"/registry/conc/{i}", VALUE)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return n / (time.perf_counter() - start)


async def run(fsync: bool, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(os.path.join(tmp, "bench.db"), fsync=fsync)
        await store.start()
        try:
            seq = await sequential(store, n)
            commits = store.commits
            conc = await concurrent(store, n, 16)
            per_commit = n / max(store.commits - commits, 1)
        finally:
            await store.close()
    print(
        f"fsync={fsync!s:5}  sequential {seq:8.0f} creates/s   "
        f"16-concurrent {conc:8.0f} creates/s   ({per_commit:.1f} writes/commit)"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    asyncio.run(run(True, n))
    asyncio.run(run(False, n))


if __name__ == "__main__":
    main()
