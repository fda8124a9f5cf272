"""`pods/portforward`: the client's side of a port-forward, terminated in the API
server and carried to the node agent one TCP connection at a time.

Two client protocols arrive here:

* kubectl: a SPDY/3.1 session tunnelled in a WebSocket (subprotocol
  `SPDY/3.1+portforward.k8s.io`). Every local connection kubectl accepts becomes an
  `error` and a `data` stream sharing a `requestid`; the ports are in the streams'
  headers.
* the Python client: the WebSocket channel protocol (`v4.channel.k8s.io`), ports in
  `?ports=`, port i on channels 2i (data) and 2i+1 (error), each channel opened by
  the port number as two little-endian bytes.

Towards the agent, each forwarded connection is one WebSocket in the runtime's
port-forward protocol (channels 0 data and 1 error, each opened by the port number),
which the agent relays to containerd. The `dial` callable opens one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from kybernetes.api import spdy
from kybernetes.api.aiotasks import cancel_and_wait

log = logging.getLogger(__name__)

SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io")
PORT_PREFIX = 2  # bytes of port number that open each channel of the runtime's protocol
# After the client says it will send no more, how long the pod may still answer
# before the connection is closed (the runtime's protocol cannot half-close).
DRAIN_SECONDS = 1.0

Dial = Callable[[int], Awaitable[Any]]


class DialError(Exception):
    """The agent refused or could not be reached; the text is for the user."""


def parse_port(value: str) -> int:
    """A port number from a header or query, or ValueError with the user's text."""
    if not value.strip().isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"invalid port {value!r}: must be between 1 and 65535")
    return int(value)


class ChannelPrefix:
    """Drops the port number that opens a channel, however the bytes are split."""

    def __init__(self) -> None:
        self.left = PORT_PREFIX

    def strip(self, data: bytes) -> bytes:
        if self.left:
            cut = min(self.left, len(data))
            self.left -= cut
            data = data[cut:]
        return data


@dataclass
class _Forward:
    """One forwarded connection of a SPDY session: its two streams and the backend."""

    request_id: str
    port: int
    error_sid: int = 0
    data_sid: int = 0
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class SpdyPortForward:
    """One kubectl port-forward session: SPDY frames in, SPDY frames out."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], dial: Dial) -> None:
        self._send = send
        self._dial = dial
        self._codec = spdy.HeaderCodec()
        self._reader = spdy.FrameReader(self._codec)
        self._by_request: dict[str, _Forward] = {}
        self._by_stream: dict[int, _Forward] = {}
        self.last_stream = 0
        self.closed = False

    async def feed(self, data: bytes) -> None:
        for frame in self._reader.feed(data):
            await self._handle(frame)

    async def close(self) -> None:
        self.closed = True
        tasks = [f.task for f in self._by_request.values() if f.task is not None]
        await cancel_and_wait(tasks)
        self._by_request.clear()
        self._by_stream.clear()

    async def _handle(self, frame: spdy.Frame) -> None:
        if frame.type == 0:
            fwd = self._by_stream.get(frame.stream_id)
            if fwd is not None and frame.stream_id == fwd.data_sid:
                if frame.payload:
                    fwd.inbound.put_nowait(frame.payload)
                if frame.fin:
                    fwd.inbound.put_nowait(None)
        elif frame.type == spdy.SYN_STREAM:
            await self._open(frame)
        elif frame.type == spdy.RST_STREAM:
            fwd = self._by_stream.get(frame.stream_id)
            if fwd is not None and fwd.task is not None:
                fwd.task.cancel()
        elif frame.type == spdy.PING:
            await self._send(spdy.control_frame(spdy.PING, 0, frame.payload))
        elif frame.type == spdy.GOAWAY:
            self.closed = True
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do.

    async def _open(self, frame: spdy.Frame) -> None:
        sid, headers = frame.stream_id, frame.headers
        self.last_stream = max(self.last_stream, sid)
        kind = headers.get("streamtype", "")
        request_id = headers.get("requestid", "")
        try:
            port = parse_port(headers.get("port", ""))
        except ValueError:
            await self._send(spdy.rst_stream(sid, spdy.REFUSED_STREAM))
            return
        if kind not in ("error", "data"):
            await self._send(spdy.rst_stream(sid, spdy.PROTOCOL_ERROR))
            return
        await self._send(spdy.syn_reply(self._codec, sid))
        fwd = self._by_request.get(request_id)
        if fwd is None:
            fwd = self._by_request[request_id] = _Forward(request_id, port)
        self._by_stream[sid] = fwd
        if kind == "error":
            fwd.error_sid = sid
        else:
            fwd.data_sid = sid
            fwd.task = asyncio.create_task(self._forward(fwd))

    async def _forward(self, fwd: _Forward) -> None:
        error = ""
        back = None
        try:
            back = await self._dial(fwd.port)
            error = await self._relay(fwd, back)
        except DialError as e:
            error = str(e)
        except asyncio.CancelledError:
            pass
        finally:
            if back is not None:
                await back.close()
            self._by_request.pop(fwd.request_id, None)
            for sid in (fwd.error_sid, fwd.data_sid):
                self._by_stream.pop(sid, None)
        if self.closed:
            return
        try:
            if fwd.error_sid:
                if error:
                    await self._send(spdy.data_frame(fwd.error_sid, error.encode()[: spdy.MAX_DATA]))
                await self._send(spdy.data_frame(fwd.error_sid, b"", fin=True))
            await self._send(spdy.data_frame(fwd.data_sid, b"", fin=True))
        except (ConnectionResetError, RuntimeError):
            pass

    async def _relay(self, fwd: _Forward, back: Any) -> str:
        """Bytes both ways until the pod's side ends; the error channel's text."""
        errors: list[bytes] = []
        prefixes = (ChannelPrefix(), ChannelPrefix())

        async def up() -> None:
            while (chunk := await fwd.inbound.get()) is not None:
                await back.send_bytes(b"\x00" + chunk)

        async def down() -> None:
            async for msg in back:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        return
                    continue
                channel, payload = msg.data[:1], msg.data[1:]
                if channel == b"\x00":
                    payload = prefixes[0].strip(payload)
                    if payload and not self.closed:
                        await self._send(spdy.data_frame(fwd.data_sid, payload))
                elif channel == b"\x01":
                    errors.append(prefixes[1].strip(payload))

        sender = asyncio.create_task(up())
        receiver = asyncio.create_task(down())
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver not in done:
                await asyncio.wait({receiver}, timeout=DRAIN_SECONDS)
        finally:
            await cancel_and_wait((sender, receiver))
        return b"".join(errors).decode(errors="replace").strip()


async def serve_spdy_tunnel(front: web.WebSocketResponse, dial: Dial) -> None:
    """Run a kubectl session on an accepted WebSocket until either side ends it."""
    session = SpdyPortForward(front.send_bytes, dial)
    try:
        async for msg in front:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await session.feed(msg.data)
                if session.closed:
                    break
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break
    except spdy.SpdyError as e:
        log.info("port-forward session ended: %s", e)
        await front.send_bytes(spdy.goaway(session.last_stream, 1))
    finally:
        await session.close()
        await front.close()


async def serve_channels(front: web.WebSocketResponse, backs: list[Any]) -> None:
    """The Python client's protocol: port i of the request on channels 2i and 2i+1,
    each relayed to its own agent connection (whose channels 0 and 1 it renumbers,
    the port-number openings included). The session ends when any port's does."""

    async def up() -> None:
        async for msg in front:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                channel = msg.data[0]
                if channel % 2 == 0 and channel // 2 < len(backs):
                    await backs[channel // 2].send_bytes(b"\x00" + msg.data[1:])
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                return

    async def down(i: int, back: Any) -> None:
        async for msg in back:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                await front.send_bytes(bytes([2 * i + msg.data[0]]) + msg.data[1:])
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                return

    tasks = [asyncio.create_task(up())] + [asyncio.create_task(down(i, b)) for i, b in enumerate(backs)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(tasks)
        for b in backs:
            await b.close()
        await front.close()
