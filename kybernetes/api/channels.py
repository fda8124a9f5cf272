"""The channel protocol of `pods/exec` and `pods/attach` streams over WebSocket:
messages whose first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 the final
status, 4 terminal resizes as JSON `{"Width": w, "Height": h}`).

The subprotocols differ in three ways, each a field of `ChannelProtocol`: the
`base64.` ones send text messages (the channel as a digit, the payload base64); from
v4 the status channel carries a JSON `metav1.Status` (before, only a failure's
message text); v5 adds channel 255, "the client will send no more on channel n".
The API server terminates whichever the client chose and speaks v5 to the node
agent (`bridge`); the agent relays v5/v4 messages unchanged (`relay`).

No WebSocket library is imported here: a relay end is anything shaped like the
`WebSocket` protocol below (aiohttp's server and client sockets are), and messages are
told apart by their RFC 6455 opcode."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from kybernetes.api.aiotasks import cancel_and_wait

STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)
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


async def _pump(up: Coroutine[Any, Any, None], down: Coroutine[Any, Any, None], back: WebSocket,
                close_front: Callable[[], Awaitable[Any]]) -> None:
    """Run both directions of a session until one ends, then end both sides."""
    up_task = asyncio.create_task(up)
    down_task = asyncio.create_task(down)
    try:
        await asyncio.wait({up_task, down_task}, return_when=asyncio.FIRST_COMPLETED)
        if not down_task.done():
            # The client went away: give the command's last output a moment, then stop.
            await asyncio.wait({down_task}, timeout=0.5)
    finally:
        await cancel_and_wait((up_task, down_task))
        await back.close()
        await close_front()


async def relay(front: WebSocket, back: WebSocket, close_signal: bool = True) -> None:
    """Copy binary channel messages both ways until either side closes, then close the
    other. Without `close_signal` (a v4 back end) the v5 close signal (channel 255) is
    dropped: v4 has no way to say it. A client's text message is taken as the binary
    one of its UTF-8 bytes, as upstream's servers read both (the official Python client
    sends stdin as text, the channel a character)."""

    async def front_to_back() -> None:
        async for msg in front:
            if msg.type in (OPCODE_BINARY, OPCODE_TEXT):
                data = msg.data.encode() if isinstance(msg.data, str) else msg.data
                if not data or (data[:1] == CLOSE_SIGNAL and not close_signal):
                    continue
                await back.send_bytes(data)
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

    await _pump(front_to_back(), back_to_front(), back, front.close)


@dataclass(frozen=True)
class ChannelProtocol:
    """How one WebSocket subprotocol frames the channels."""

    name: str
    text: bool = False  # text messages: the channel as an ASCII digit, the payload base64
    status_json: bool = False  # v4 and later: the status channel carries a JSON metav1.Status
    close_signal: bool = False  # v5: channel 255 half-closes the channel named by the next byte


V5 = ChannelProtocol("v5.channel.k8s.io", status_json=True, close_signal=True)
V4 = ChannelProtocol("v4.channel.k8s.io", status_json=True)
V4_BASE64 = ChannelProtocol("v4.base64.channel.k8s.io", text=True, status_json=True)
V1 = ChannelProtocol("channel.k8s.io")
V1_BASE64 = ChannelProtocol("base64.channel.k8s.io", text=True)
# What the server speaks over WebSocket, as kube-apiserver and the kubelet do ("" is a
# client that offered no subprotocol: channel.k8s.io). v2 and v3 exist only over SPDY.
WEBSOCKET_PROTOCOLS: dict[str, ChannelProtocol] = {
    p.name: p for p in (V5, V4, V4_BASE64, V1, V1_BASE64)} | {"": V1}


def negotiate(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """The first of the client's offers that the server speaks: the client's order
    decides, as in upstream's handshakes (WebSocket and SPDY alike)."""
    known = set(supported)
    return next((p for p in offered if p in known), None)


def offered_protocols(values: Iterable[str]) -> list[str]:
    """Header values (repeated and/or comma-separated) as one ordered list."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


# An event of the client's side: data on a channel, or (payload None) "no more on it".
Event = tuple[int, bytes | None]


def decode_message(proto: ChannelProtocol, data: bytes | str) -> Event | None:
    """One client message as an event, or None for a message to drop (empty, on no
    known channel, bad base64). Upstream reads text and binary messages alike; the
    subprotocol, not the opcode, says how to decode."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not raw:
        return None
    if proto.close_signal and raw[:1] == CLOSE_SIGNAL:
        return (raw[1], None) if len(raw) == 2 and raw[1] <= RESIZE else None
    channel, payload = raw[0], raw[1:]
    if proto.text:
        channel -= ord("0")
        try:
            payload = base64.b64decode(payload.replace(b"\r", b"").replace(b"\n", b""), validate=True)
        except (binascii.Error, ValueError):
            return None
    if not 0 <= channel <= RESIZE:
        return None
    return channel, payload


def encode_message(proto: ChannelProtocol, channel: int, payload: bytes) -> bytes | str:
    if proto.text:
        return chr(ord("0") + channel) + base64.b64encode(payload).decode()
    return bytes([channel]) + payload


def status_for(status_json: bool, status: bytes) -> bytes:
    """What the status channel carries for a client: the JSON Status from v4 on;
    before, nothing on success and the failure's message otherwise (empty: success)."""
    if status_json:
        return status
    try:
        parsed = json.loads(status)
    except ValueError:
        return status
    if not isinstance(parsed, dict):
        return status
    if parsed.get("status") == "Success":
        return b""
    return str(parsed.get("message") or "error executing command").encode()


class Front(Protocol):
    """The client's end of an exec or attach, in channel terms, whatever its protocol."""

    async def receive(self) -> Event | None:
        """The client's next event; None once it is gone."""
        ...

    async def send(self, channel: int, payload: bytes) -> None: ...

    async def finish(self) -> None:
        """The session is over: end every stream and close."""
        ...


class WebSocketFront:
    """A client's WebSocket in any of `WEBSOCKET_PROTOCOLS`."""

    def __init__(self, ws: WebSocket, proto: ChannelProtocol) -> None:
        self.ws = ws
        self.proto = proto
        self._messages = ws.__aiter__()

    async def receive(self) -> Event | None:
        while True:
            try:
                msg = await self._messages.__anext__()
            except StopAsyncIteration:
                return None
            if msg.type in (OPCODE_TEXT, OPCODE_BINARY):
                event = decode_message(self.proto, msg.data)
                if event is not None:
                    return event
            elif _ends(msg.type):
                return None

    async def send(self, channel: int, payload: bytes) -> None:
        if channel == ERROR:
            payload = status_for(self.proto.status_json, payload)
            if not payload:
                return
        message = encode_message(self.proto, channel, payload)
        if isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_bytes(message)

    async def finish(self) -> None:
        await self.ws.close()


async def bridge(front: Front, back: WebSocket) -> None:
    """Carry a client's session to a v5 back end (the node agent) and back until
    either side ends, then end both. Only stdout, stderr and the status travel down."""

    async def front_to_back() -> None:
        while (event := await front.receive()) is not None:
            channel, payload = event
            await back.send_bytes(bytes([channel]) + payload if payload is not None
                                  else CLOSE_SIGNAL + bytes([channel]))

    async def back_to_front() -> None:
        async for msg in back:
            if msg.type == OPCODE_BINARY and msg.data:
                if msg.data[0] in (STDOUT, STDERR, ERROR):
                    await front.send(msg.data[0], bytes(msg.data[1:]))
            elif _ends(msg.type):
                break

    await _pump(front_to_back(), back_to_front(), back, front.finish)
