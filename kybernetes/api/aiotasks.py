"""A component's event loop: how it is run (`run_loop`, `tune_gc`) and how the tasks it
started are ended (`cancel_and_wait`), the one way its loops, relays and watchers stop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterable
from typing import Any

GC_THRESHOLD_0 = 20_000


def tune_gc() -> None:
    """Collect garbage less often, once a component has started (KYB_GC=default keeps
    Python's settings)."""
    # Every component decodes JSON all day: tens of thousands of short-lived dicts per
    # second. Python's default first-generation threshold (700) runs the collector
    # hundreds of times a second, and the objects made at start-up (schemas, modules)
    # would be walked by every full collection: freeze them and collect less often.
    import gc

    if os.environ.get("KYB_GC") == "default":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, 20, 20)


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a component's main coroutine on uvloop (the same asyncio API on libuv, with a
    faster TLS and socket layer, where every component spends much of its time), or on
    the standard loop when KYB_EVENT_LOOP=asyncio (profilers such as py-spy see into
    its callbacks)."""
    if os.environ.get("KYB_EVENT_LOOP") == "asyncio":
        return asyncio.run(main)
    import uvloop

    return uvloop.run(main)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel each task and wait until all have ended; what they raised while ending
    (cancellation included) is theirs, not the caller's."""
    pending = list(tasks)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
