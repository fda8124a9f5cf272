"""exec and attach sessions with the container runtime's streaming server, over
SPDY/3.1.

The runtime (containerd's CRI plugin) serves the kubelet's streaming protocol: a
WebSocket (v4 and older, which cannot say "stdin ended") or SPDY, where every channel
is a stream and half-closing the stdin stream closes the command's stdin (and, for
attach, the container's when it has `stdinOnce`). So the agent speaks SPDY to the
runtime and v5 channel messages to the API server: `RuntimeSession` is shaped like a
channel WebSocket (`channels.WebSocket`), and `channels.relay` joins the two.

The session reads the runtime's output as soon as it comes, whether or not the client
has taken the earlier output yet (up to `BUFFER_LIMIT` bytes held): containerd copies a
container's output to its log file and to every attached client in turn, so a client
slower than the container would otherwise stall the container's writes and its log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from kybernetes.api import spdy
from kybernetes.api.channels import CLOSE_SIGNAL, ERROR, OPCODE_BINARY, RESIZE, STDERR, STDIN, STDOUT

log = logging.getLogger(__name__)

PROTOCOL = "v4.channel.k8s.io"  # the error stream carries a JSON Status with the exit code
REPLY_TIMEOUT = 30.0
# Output held for a slow client before the runtime is made to wait (see the module's docstring).
BUFFER_LIMIT = 64 * 1024 * 1024
_CHANNEL_OF = {"stdout": STDOUT, "stderr": STDERR}


class RuntimeStreamError(Exception):
    """The runtime refused the session; the text is for the user."""


@dataclass(frozen=True)
class ChannelMessage:
    type: int
    data: bytes


def stream_kinds(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> list[str]:
    """The streams the runtime waits for: it counts them from the exec or attach
    request it was given, so they must be exactly these."""
    kinds = ["error"] + [k for k, wanted in (("stdin", stdin), ("stdout", stdout)) if wanted]
    if stderr and not tty:
        kinds.append("stderr")
    if tty:
        kinds.append("resize")
    return kinds


class RuntimeSession:
    """One session with the runtime: v5 channel messages in (`send_bytes`), out (async
    iteration: stdout, stderr, then the status as one message), until the runtime
    closes the connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, codec: spdy.HeaderCodec,
                 streams: dict[str, int]) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = codec
        self._frames = spdy.FrameReader(codec)
        self._sid = streams
        self._kind = {sid: kind for kind, sid in streams.items()}
        self._replied: set[int] = set()
        self._pending: deque[ChannelMessage] = deque()
        self._status = bytearray()
        self._status_sent = False
        self._stdin_closed = False
        self._eof = False
        self._buffered = 0  # bytes of output in `_pending`
        self._changed = asyncio.Event()  # output came, the client took some, or the runtime is gone
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> RuntimeSession:
        parts = urlsplit(url)
        context = None
        if parts.scheme == "https":
            # The runtime's own, on this host: there is no CA to check it against.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or (443 if context else 80),
                                                       ssl=context)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            writer.write((f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: 0\r\n"
                          f"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {PROTOCOL}\r\n"
                          "\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
            if not head.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
                body = await asyncio.wait_for(reader.read(4096), REPLY_TIMEOUT)
                status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
                raise RuntimeStreamError(f"{status_line}: {body.decode(errors='replace').strip()}")
            codec = spdy.HeaderCodec()
            streams = {}
            for i, kind in enumerate(stream_kinds(stdin, stdout, stderr, tty)):
                streams[kind] = 2 * i + 1
                writer.write(spdy.syn_stream(codec, 2 * i + 1, {"streamType": kind}))
            await writer.drain()
            session = cls(reader, writer, codec, streams)
            await asyncio.wait_for(session._replies(), REPLY_TIMEOUT)
            session._reader_task = asyncio.create_task(session._read_all())
            return session
        except BaseException:
            writer.close()
            raise

    async def _replies(self) -> None:
        while not self._replied >= set(self._kind):
            if self._eof:
                raise RuntimeStreamError("the runtime closed the session before accepting its streams")
            await self._read_more()

    def __aiter__(self) -> RuntimeSession:
        return self

    async def __anext__(self) -> ChannelMessage:
        while not self._pending:
            if self._eof:
                raise StopAsyncIteration
            if self._reader_task is None:
                await self._read_more()
                continue
            self._changed.clear()
            await self._changed.wait()
        msg = self._pending.popleft()
        self._buffered -= len(msg.data)
        self._changed.set()
        return msg

    async def _read_all(self) -> None:
        """Take the runtime's frames until it goes, holding at most `BUFFER_LIMIT` bytes."""
        try:
            while not self._eof:
                if self._buffered > BUFFER_LIMIT:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                await self._read_more()
                self._changed.set()
        except RuntimeStreamError as e:
            log.info("runtime streaming session ended: %s", e)
            self._flush_status()
            self._eof = True
        finally:
            self._changed.set()

    async def _read_more(self) -> None:
        try:
            chunk = await self._reader.read(65536)
        except (ConnectionError, ssl.SSLError):
            chunk = b""
        frames, error = self._frames.parse(chunk) if chunk else ([], None)
        for frame in frames:
            await self._handle(frame)
        if error is not None:
            log.info("runtime streaming session ended: %s", error)
        if not chunk or error is not None:
            self._flush_status()
            self._eof = True

    async def _handle(self, frame: spdy.Frame) -> None:
        kind = self._kind.get(frame.stream_id, "")
        if frame.type == 0:
            if kind in _CHANNEL_OF and frame.payload:
                self._pending.append(ChannelMessage(OPCODE_BINARY, bytes([_CHANNEL_OF[kind]]) + frame.payload))
                self._buffered += len(frame.payload) + 1
            elif kind == "error":
                self._status += frame.payload
                if frame.fin:
                    self._flush_status()
        elif frame.type == spdy.SYN_REPLY:
            self._replied.add(frame.stream_id)
        elif frame.type == spdy.RST_STREAM:
            # The runtime resets every stream when the command has ended, the status written.
            if frame.stream_id not in self._replied:
                raise RuntimeStreamError(f"the runtime refused the {kind} stream")
            if kind == "error":
                self._flush_status()
            elif kind == "stdin":
                self._stdin_closed = True
        elif frame.type == spdy.PING:
            self._writer.write(spdy.control_frame(spdy.PING, 0, frame.payload))
        elif frame.type == spdy.GOAWAY:
            self._flush_status()

    def _flush_status(self) -> None:
        if not self._status_sent:
            self._status_sent = True
            if self._status:
                self._pending.append(ChannelMessage(OPCODE_BINARY, bytes([ERROR]) + bytes(self._status)))
                self._buffered += len(self._status) + 1

    async def send_bytes(self, data: bytes) -> None:
        """A v5 channel message from the client: stdin, resize, or the close signal."""
        if not data or self._writer.is_closing():
            return
        if data[:1] == CLOSE_SIGNAL:
            if data[1:2] == bytes([STDIN]) and "stdin" in self._sid and not self._stdin_closed:
                self._stdin_closed = True
                self._writer.write(spdy.data_frame(self._sid["stdin"], b"", fin=True))
        else:
            kind = {STDIN: "stdin", RESIZE: "resize"}.get(data[0])
            if kind not in self._sid or (kind == "stdin" and self._stdin_closed):
                return
            payload = data[1:]
            for i in range(0, len(payload), spdy.MAX_DATA):
                self._writer.write(spdy.data_frame(self._sid[kind], payload[i:i + spdy.MAX_DATA]))
        await self._writer.drain()

    async def send_str(self, data: str) -> None:
        """Text carries nothing in the channel protocol the API server speaks here."""

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
