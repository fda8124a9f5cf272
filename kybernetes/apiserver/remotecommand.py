"""`pods/exec` and `pods/attach`: the client's protocol, terminated in the API server
and carried to the node agent as one v5 channel WebSocket (`channels.bridge`).

Two transports arrive here, told apart by the `Upgrade` header:

* WebSocket, in any subprotocol of `channels.WEBSOCKET_PROTOCOLS` (kubectl 1.29 and
  later: v5; the Python client: v4; browsers: the base64 ones).
* SPDY/3.1 on the upgraded HTTP connection (kubectl with
  `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, client-go's SPDY executor, Kubernetes'
  own e2e framework). The version is negotiated in `X-Stream-Protocol-Version`; the
  client then opens one stream per channel, named by its `streamType` header (error,
  stdin, stdout, stderr, and from v3 resize). Half-closing the stdin stream ends the
  command's stdin; the server ends every stream when the command has finished, after
  writing the status on the error stream (JSON from v4, the failure's text before).

The decisions (which version, which streams) are small functions; `SpdyFront` turns
frames into channel events and back; `serve` is the aiohttp shell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from kybernetes.api import spdy
from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.channels import (
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    WEBSOCKET_PROTOCOLS,
    Event,
    WebSocketFront,
    bridge,
    negotiate,
    offered_protocols,
    status_for,
)
from kybernetes.api.errors import ApiError

log = logging.getLogger(__name__)

# What the API server speaks to the node agent: v5 can say "stdin ended".
AGENT_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
# How long a SPDY client has to open the streams it asked for (upstream's default).
STREAM_CREATION_TIMEOUT = 30.0
# Data frames written to the client are cut to this size.
CHUNK = 32 * 1024
# Bytes read ahead from a client before reading pauses until the agent has taken them.
READ_LIMIT = 256 * 1024


@dataclass(frozen=True)
class SpdyVersion:
    name: str
    resize: bool  # v3 and later open a resize stream when there is a TTY
    status_json: bool  # v4 and later write a JSON metav1.Status on the error stream


# In the order upstream lists them; the client's order of offers decides. Over SPDY,
# v5 is v4: its close signal exists only in WebSocket framing.
SPDY_VERSIONS: dict[str, SpdyVersion] = {v.name: v for v in (
    SpdyVersion("v5.channel.k8s.io", True, True),
    SpdyVersion("v4.channel.k8s.io", True, True),
    SpdyVersion("v3.channel.k8s.io", True, False),
    SpdyVersion("v2.channel.k8s.io", False, False),
    SpdyVersion("channel.k8s.io", False, False),
)}
STREAM_TYPES = ("error", "stdin", "stdout", "stderr", "resize")
_CHANNEL_STREAMS = {STDOUT: "stdout", STDERR: "stderr", ERROR: "error"}


@dataclass(frozen=True)
class Negotiated:
    """The client's transport and protocol: `spdy` False is WebSocket ("" when the
    client offered no subprotocol)."""

    spdy: bool
    protocol: str


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "") in ("true", "1", "True")


def negotiate_request(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> Negotiated:
    """The transport and protocol of an exec/attach request, or the 4xx the client gets."""
    upgrade = headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        offered = offered_protocols(headers.getall("Sec-WebSocket-Protocol", []))
        if not offered:
            return Negotiated(False, "")
        chosen = negotiate(offered, WEBSOCKET_PROTOCOLS)
        if chosen is None:
            raise ApiError.bad_request(f"none of the offered subprotocols {offered} is supported: "
                                       f"{', '.join(p for p in WEBSOCKET_PROTOCOLS if p)}")
        return Negotiated(False, chosen)
    if "spdy/3.1" in upgrade and "upgrade" in headers.get("Connection", "").lower():
        offered = offered_protocols(headers.getall(PROTOCOL_HEADER, []))
        if not offered:
            raise ApiError.bad_request(f"unable to upgrade: {PROTOCOL_HEADER} is required")
        chosen = negotiate(offered, SPDY_VERSIONS)
        if chosen is None:
            raise ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                             f"{offered}, server accepts {list(SPDY_VERSIONS)}",
                           headers={"X-Accepted-Stream-Protocol-Versions": ", ".join(SPDY_VERSIONS)})
        return Negotiated(True, chosen)
    raise ApiError.bad_request("Upgrade request required: pods/exec and pods/attach speak WebSocket "
                               "(v5.channel.k8s.io, v4.channel.k8s.io, ...) or SPDY/3.1")


def expected_streams(version: SpdyVersion, query: Mapping[str, str]) -> frozenset[str]:
    """The streams a SPDY client opens for this request: always error, the standard
    streams it asked for (no stderr with a TTY), resize with a TTY from v3 on."""
    tty = _flag(query, "tty")
    wanted = {"error"}
    wanted |= {name for name in ("stdin", "stdout") if _flag(query, name)}
    if _flag(query, "stderr") and not tty:
        wanted.add("stderr")
    if tty and version.resize:
        wanted.add("resize")
    return frozenset(wanted)


class SpdyFront:
    """One client's SPDY session as channel events (`channels.Front`). `feed` takes the
    connection's bytes; a protocol violation raises `spdy.SpdyError`."""

    def __init__(self, send: Callable[[bytes], Awaitable[Any]], version: SpdyVersion,
                 expected: frozenset[str]) -> None:
        self._send = send
        self.version = version
        self.expected = expected
        self._codec = spdy.HeaderCodec()
        self._reader = spdy.FrameReader(self._codec)
        self._sid_of: dict[str, int] = {}
        self._type_of: dict[int, str] = {}
        self._done: set[int] = set()  # streams this side has ended (or the client reset)
        # Bounded: a client that sends faster than the agent takes waits (see `serve`).
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=64)
        self.ready = asyncio.Event()
        self.last_stream = 0
        self._gone = False

    async def feed(self, data: bytes) -> None:
        frames, error = self._reader.parse(data)
        for frame in frames:
            await self._handle(frame)
        if error is not None:
            raise error

    async def client_gone(self) -> None:
        await self._events.put(None)

    async def receive(self) -> Event | None:
        if self._gone:
            return None
        event = await self._events.get()
        self._gone = event is None
        return event

    async def send(self, channel: int, payload: bytes) -> None:
        sid = self._sid_of.get(_CHANNEL_STREAMS.get(channel, ""))
        if sid is None or sid in self._done:
            return
        if channel == ERROR:
            payload = status_for(self.version.status_json, payload)
        for i in range(0, len(payload), CHUNK):
            await self._send(spdy.data_frame(sid, payload[i:i + CHUNK]))

    async def finish(self) -> None:
        """End every stream the client opened, then the session."""
        try:
            for sid in list(self._type_of):
                if sid not in self._done:
                    self._done.add(sid)
                    await self._send(spdy.data_frame(sid, b"", fin=True))
            await self._send(spdy.goaway(self.last_stream))
        except (ConnectionError, RuntimeError):
            pass

    async def fail(self, reason: str) -> None:
        log.info("exec/attach SPDY session ended: %s", reason)
        try:
            await self._send(spdy.goaway(self.last_stream, spdy.PROTOCOL_ERROR))
        except (ConnectionError, RuntimeError):
            pass

    async def _handle(self, frame: spdy.Frame) -> None:
        if frame.type == 0:
            kind = self._type_of.get(frame.stream_id)
            if kind == "stdin":
                if frame.payload:
                    await self._events.put((STDIN, frame.payload))
                if frame.fin:
                    await self._events.put((STDIN, None))
            elif kind == "resize" and frame.payload:
                # The agent's runtime decodes the resize channel as a stream of JSON
                # objects, as upstream does this stream: the bytes go on unchanged.
                await self._events.put((RESIZE, frame.payload))
            # The client writes only on stdin and resize; anything else is dropped.
        elif frame.type == spdy.SYN_STREAM:
            await self._open(frame)
        elif frame.type == spdy.RST_STREAM:
            self._done.add(frame.stream_id)
            if self._type_of.get(frame.stream_id) == "stdin":
                await self._events.put((STDIN, None))
        elif frame.type == spdy.PING:
            await self._send(spdy.control_frame(spdy.PING, 0, frame.payload))
        elif frame.type == spdy.GOAWAY:
            await self._events.put(None)
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do.

    async def _open(self, frame: spdy.Frame) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self.last_stream:
            raise spdy.SpdyError(f"client opened stream {sid} after {self.last_stream}")
        self.last_stream = sid
        kind = frame.headers.get("streamtype", "")
        allowed = STREAM_TYPES if self.version.resize else STREAM_TYPES[:-1]
        if kind not in allowed or kind in self._sid_of:
            await self._send(spdy.rst_stream(sid, spdy.REFUSED_STREAM))
            return
        await self._send(spdy.syn_reply(self._codec, sid))
        self._sid_of[kind] = sid
        self._type_of[sid] = kind
        if frame.fin and kind == "stdin":
            await self._events.put((STDIN, None))
        if self.expected <= self._sid_of.keys():
            self.ready.set()


class _RawPayload:
    """Takes an upgraded connection's bytes from aiohttp (its `set_parser` seam, which
    aiohttp's own WebSocket uses) into a StreamReader that pauses the socket when full."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if not self.reader.at_eof():
            self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


async def _pump(reader: asyncio.StreamReader, front: SpdyFront) -> None:
    try:
        while chunk := await reader.read(65536):
            await front.feed(chunk)
    except spdy.SpdyError as e:
        await front.fail(str(e))
    except ConnectionError:
        pass
    finally:
        await front.client_gone()


async def serve_spdy(request: web.Request, version: SpdyVersion, back: Any) -> web.StreamResponse:
    """Upgrade the request to SPDY/3.1 and run the session until either side ends."""
    transport = request.transport
    protocol = request.protocol
    assert transport is not None and protocol is not None
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    reader.set_transport(transport)
    # Before the 101 goes out: the client's first frames may follow it at once.
    protocol.set_parser(_RawPayload(reader))  # type: ignore[arg-type]
    resp = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", PROTOCOL_HEADER: version.name})
    resp.force_close()
    await resp.prepare(request)
    front = SpdyFront(resp.write, version, expected_streams(version, request.query))
    pump = asyncio.create_task(_pump(reader, front))
    ready = asyncio.create_task(front.ready.wait())
    try:
        await asyncio.wait({pump, ready}, timeout=STREAM_CREATION_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            await bridge(front, back)
        else:
            log.info("exec/attach SPDY client did not open its streams (%s)", sorted(front.expected))
            await back.close()
            await front.finish()
    finally:
        await cancel_and_wait((pump, ready))
        transport.close()
    return resp


async def serve(request: web.Request, negotiated: Negotiated, back: Any) -> web.StreamResponse:
    """Answer the client's upgrade and carry its session to `back`, the agent's socket."""
    if negotiated.spdy:
        return await serve_spdy(request, SPDY_VERSIONS[negotiated.protocol], back)
    ws = web.WebSocketResponse(protocols=(negotiated.protocol,) if negotiated.protocol else ())
    try:
        await ws.prepare(request)
    except BaseException:
        await back.close()
        raise
    await bridge(WebSocketFront(ws, WEBSOCKET_PROTOCOLS[negotiated.protocol]), back)
    return ws
