"""Ending asyncio tasks that a component started: the one way its loops, relays and
watchers are stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel each task and wait until all have ended; what they raised while ending
    (cancellation included) is theirs, not the caller's."""
    pending = list(tasks)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
