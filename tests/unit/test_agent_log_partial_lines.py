"""A container's last output line without a newline (CRI tag P, never ended by an F
chunk) is shown by `kubectl logs`, followed or not, as the kubelet shows it."""

from __future__ import annotations

import asyncio

from kybernetes.agent import logs

LOG = (b"2026-01-01T00:00:00.1Z stdout F first\n"
       b"2026-01-01T00:00:00.2Z stdout P ab\n"
       b"2026-01-01T00:00:00.3Z stdout P c\n")


async def _read(path: str, follow: bool, **opts: object) -> bytes:
    done = asyncio.Event()  # cleared: the container has exited
    return b"".join([c async for c in logs.read_log(path, logs.LogOptions(**opts), follow, done, poll=0.01)])


def test_unfinished_last_line_is_shown_without_a_newline(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(LOG)
    assert asyncio.run(_read(str(path), False)) == b"first\nabc"
    assert asyncio.run(_read(str(path), True)) == b"first\nabc"
    assert asyncio.run(_read(str(path), False, tail_lines=1)) == b"abc"
    assert asyncio.run(_read(str(path), False, timestamps=True)).endswith(b"2026-01-01T00:00:00.2Z abc")
    # A line still being written (no record end yet) is not shown half.
    path.write_bytes(LOG[:-3])
    assert asyncio.run(_read(str(path), False)) == b"first\nab"
