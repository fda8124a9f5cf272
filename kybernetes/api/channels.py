"""The channel protocol of `pods/exec` and `pods/attach` streams (v5.channel.k8s.io and
v4.channel.k8s.io over WebSocket): binary messages whose first byte is the channel (0
stdin, 1 stdout, 2 stderr, 3 the final Status, 4 resize; v5 adds 255, a close signal).
The API server and the node agent only relay them, hop by hop."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from kybernetes.api.aiotasks import cancel_and_wait

CLOSE_SIGNAL = b"\xff"


async def relay(front: Any, back: Any, close_signal: bool = True) -> None:
    """Copy binary channel messages both ways until either side closes, then close the
    other. Without `close_signal` (a v4 back end) the v5 close signal (channel 255) is
    dropped: v4 has no way to say it."""

    async def front_to_back() -> None:
        async for msg in front:
            if msg.type == aiohttp.WSMsgType.BINARY:
                if msg.data[:1] == CLOSE_SIGNAL and not close_signal:
                    continue
                await back.send_bytes(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break

    async def back_to_front() -> None:
        async for msg in back:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await front.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await front.send_str(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break

    up = asyncio.create_task(front_to_back())
    down = asyncio.create_task(back_to_front())
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if not down.done():
            # The client went away: give the command's last output a moment, then stop.
            await asyncio.wait({down}, timeout=0.5)
    finally:
        await cancel_and_wait((up, down))
        await back.close()
        await front.close()
