"""The channel protocol of `pods/exec` and `pods/attach` streams (v5.channel.k8s.io and
v4.channel.k8s.io over WebSocket): binary messages whose first byte is the channel (0
stdin, 1 stdout, 2 stderr, 3 the final Status, 4 resize; v5 adds 255, a close signal).
The API server and the node agent only relay them, hop by hop.

No WebSocket library is imported here: a relay end is anything shaped like the
`WebSocket` protocol below (aiohttp's server and client sockets are), and messages are
told apart by their RFC 6455 opcode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from kybernetes.api.aiotasks import cancel_and_wait

CLOSE_SIGNAL = b"\xff"

# RFC 6455 opcodes. Libraries report their own closing/closed/error states with values
# above the opcode range (aiohttp: 0x100 and up); those end a relay like a close frame.
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
_LIBRARY_STATES = 0x100


def _ends(msg_type: int) -> bool:
    return msg_type == OPCODE_CLOSE or msg_type >= _LIBRARY_STATES


class Message(Protocol):
    @property
    def type(self) -> int: ...

    @property
    def data(self) -> Any: ...


class WebSocket(Protocol):
    """One end of a relay: an async iterator of messages that can send and close."""

    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_str(self, data: str) -> None: ...

    async def close(self) -> Any: ...


async def relay(front: WebSocket, back: WebSocket, close_signal: bool = True) -> None:
    """Copy binary channel messages both ways until either side closes, then close the
    other. Without `close_signal` (a v4 back end) the v5 close signal (channel 255) is
    dropped: v4 has no way to say it."""

    async def front_to_back() -> None:
        async for msg in front:
            if msg.type == OPCODE_BINARY:
                if msg.data[:1] == CLOSE_SIGNAL and not close_signal:
                    continue
                await back.send_bytes(msg.data)
            elif _ends(msg.type):
                break

    async def back_to_front() -> None:
        async for msg in back:
            if msg.type == OPCODE_BINARY:
                await front.send_bytes(msg.data)
            elif msg.type == OPCODE_TEXT:
                await front.send_str(msg.data)
            elif _ends(msg.type):
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
