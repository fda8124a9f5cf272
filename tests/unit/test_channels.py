"""The exec/attach channel relay (api/channels.py) works on any WebSocket-shaped ends,
and reads aiohttp's messages by their RFC 6455 opcodes."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import aiohttp

from kybernetes.api.channels import CLOSE_SIGNAL, relay


class Msg(NamedTuple):
    type: int
    data: Any


class End:
    """A WebSocket end fed from a script of incoming messages; records what it is sent."""

    def __init__(self, incoming: list[Msg], hold_open: bool = False) -> None:
        self.incoming = incoming
        self.hold_open = hold_open
        self.sent: list[Any] = []
        self.closed = False

    def __aiter__(self) -> End:
        return self

    async def __anext__(self) -> Msg:
        if self.incoming:
            await asyncio.sleep(0)
            return self.incoming.pop(0)
        if self.hold_open and not self.closed:
            await asyncio.sleep(3600)
        raise StopAsyncIteration

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_str(self, data: str) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        self.closed = True


async def test_relay_copies_channel_frames_both_ways_and_closes_both() -> None:
    t = aiohttp.WSMsgType
    front = End([Msg(t.BINARY, b"\x00ls\n"), Msg(t.TEXT, "\x00typed\u00e9\n"), Msg(t.TEXT, ""),
                 Msg(t.BINARY, CLOSE_SIGNAL + b"\x00")], hold_open=True)
    back = End([Msg(t.BINARY, b"\x01out"), Msg(t.TEXT, "text"), Msg(t.CLOSE, None), Msg(t.BINARY, b"late")])
    await relay(front, back, close_signal=False)
    # A v4 back end never sees the v5 close signal; the client's text (the official Python
    # client's stdin) is the channel frame of its UTF-8 bytes.
    assert back.sent == [b"\x00ls\n", "\x00typed\u00e9\n".encode()]
    # Nothing after the back end's close frame is relayed.
    assert front.sent == [b"\x01out", "text"]
    assert front.closed and back.closed


async def test_relay_forwards_the_close_signal_to_a_v5_back_end_and_stops_on_a_library_error() -> None:
    t = aiohttp.WSMsgType
    front = End([Msg(t.BINARY, CLOSE_SIGNAL + b"\x00"), Msg(t.ERROR, None), Msg(t.BINARY, b"late")])
    back = End([], hold_open=True)
    await relay(front, back, close_signal=True)
    assert back.sent == [CLOSE_SIGNAL + b"\x00"]
    assert front.closed and back.closed
