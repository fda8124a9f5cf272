"""The agent's SPDY session with the runtime's streaming server (agent/runtime_stream.py),
against a scripted runtime on a local socket that behaves as the kubelet's streaming
server does: it answers the upgrade, replies to each stream, writes output, the
status, then resets every stream and goes away."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kybernetes.agent.runtime_stream import RuntimeSession, RuntimeStreamError, stream_kinds
from kybernetes.api import channels, spdy

STATUS = json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                     "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}).encode()


class Runtime:
    """What the runtime saw: the request head, the streams by type, what came on them."""

    def __init__(self) -> None:
        self.head = b""
        self.streams: dict[str, int] = {}
        self.data: dict[str, bytes] = {}
        self.fin: set[str] = set()


Script = Callable[[Runtime, asyncio.StreamReader, asyncio.StreamWriter, spdy.FrameReader, spdy.HeaderCodec],
                  Awaitable[None]]


async def read_until(rt: Runtime, reader: asyncio.StreamReader, frames: spdy.FrameReader, codec: spdy.HeaderCodec,
                     writer: asyncio.StreamWriter, done: Callable[[], bool]) -> None:
    """Take the client's frames (replying to new streams) until `done()`."""
    while not done():
        chunk = await reader.read(65536)
        if not chunk:
            return
        for f in frames.feed(chunk):
            kind = {sid: k for k, sid in rt.streams.items()}.get(f.stream_id, "")
            if f.type == spdy.SYN_STREAM:
                rt.streams[f.headers["streamtype"]] = f.stream_id
                writer.write(spdy.syn_reply(codec, f.stream_id))
            elif f.type == 0:
                rt.data[kind] = rt.data.get(kind, b"") + f.payload
                if f.fin:
                    rt.fin.add(kind)


@pytest.fixture
async def runtime() -> AsyncIterator[Callable[[Script], Awaitable[tuple[str, Runtime]]]]:
    servers = []

    async def start(script: Script) -> tuple[str, Runtime]:
        rt = Runtime()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            rt.head = await reader.readuntil(b"\r\n\r\n")
            codec = spdy.HeaderCodec()
            try:
                await script(rt, reader, writer, spdy.FrameReader(codec), codec)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/exec/tok3n", rt

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


def test_the_streams_are_the_ones_the_runtime_counts():
    assert stream_kinds(stdin=True, stdout=True, stderr=True, tty=False) == ["error", "stdin", "stdout", "stderr"]
    assert stream_kinds(stdin=True, stdout=True, stderr=True, tty=True) == ["error", "stdin", "stdout", "resize"]
    assert stream_kinds(stdin=False, stdout=True, stderr=False, tty=False) == ["error", "stdout"]


async def test_a_session_end_to_end(runtime):
    async def script(rt, reader, writer, frames, codec):
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
        await read_until(rt, reader, frames, codec, writer, lambda: "stdin" in rt.fin)
        writer.write(spdy.data_frame(rt.streams["stdout"], b"out"))
        writer.write(spdy.data_frame(rt.streams["stderr"], b"err"))
        writer.write(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 2)))
        writer.write(spdy.data_frame(rt.streams["error"], STATUS[:10]))
        writer.write(spdy.data_frame(rt.streams["error"], STATUS[10:]))
        for sid in rt.streams.values():
            writer.write(spdy.rst_stream(sid, 5))
        writer.write(spdy.goaway(0))
        await writer.drain()

    url, rt = await runtime(script)
    session = await RuntimeSession.open(url, stdin=True, stdout=True, stderr=True, tty=False)
    await session.send_bytes(b"\x00hello")
    await session.send_bytes(b"\x04{}")  # no resize stream without a TTY: dropped
    await session.send_bytes(channels.CLOSE_SIGNAL + b"\x00")
    await session.send_bytes(b"\x00too late")  # stdin has ended
    got = [m async for m in session]
    await session.close()
    assert b"POST /exec/tok3n HTTP/1.1" in rt.head and b"Upgrade: SPDY/3.1" in rt.head
    assert b"X-Stream-Protocol-Version: v4.channel.k8s.io" in rt.head
    assert sorted(rt.streams) == ["error", "stderr", "stdin", "stdout"]
    assert rt.data == {"stdin": b"hello"} and rt.fin == {"stdin"}
    # the status comes whole, in one message, after the output
    assert [(m.type, m.data) for m in got] == [(channels.OPCODE_BINARY, b"\x01out"),
                                               (channels.OPCODE_BINARY, b"\x02err"),
                                               (channels.OPCODE_BINARY, b"\x03" + STATUS)]


async def test_tty_session_carries_resizes(runtime):
    async def script(rt, reader, writer, frames, codec):
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        await read_until(rt, reader, frames, codec, writer, lambda: b"}" in rt.data.get("resize", b""))
        writer.write(spdy.data_frame(rt.streams["error"], b"", fin=True))

    url, rt = await runtime(script)
    session = await RuntimeSession.open(url, stdin=True, stdout=True, stderr=True, tty=True)
    await session.send_bytes(b'\x04{"Width":9,"Height":3}')
    assert [m async for m in session] == []  # no output, and an empty status says nothing
    await session.close()
    assert sorted(rt.streams) == ["error", "resize", "stdin", "stdout"]
    assert rt.data == {"resize": b'{"Width":9,"Height":3}'}


async def test_refusals_are_errors_for_the_user(runtime):
    async def not_found(rt, reader, writer, frames, codec):
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 15\r\n\r\nsession expired")
        await writer.drain()

    url, _ = await runtime(not_found)
    with pytest.raises(RuntimeStreamError, match="404 Not Found: session expired"):
        await RuntimeSession.open(url, stdin=False, stdout=True, stderr=True, tty=False)

    async def refuses_streams(rt, reader, writer, frames, codec):
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        chunk = await reader.read(65536)
        for f in frames.feed(chunk):
            writer.write(spdy.rst_stream(f.stream_id, spdy.REFUSED_STREAM))
        await writer.drain()
        await reader.read()

    url, _ = await runtime(refuses_streams)
    with pytest.raises(RuntimeStreamError, match="refused"):
        await RuntimeSession.open(url, stdin=False, stdout=True, stderr=True, tty=False)


async def test_garbage_from_the_runtime_ends_the_session(runtime):
    async def garbage(rt, reader, writer, frames, codec):
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        await read_until(rt, reader, frames, codec, writer, lambda: len(rt.streams) == 2)
        writer.write(spdy.data_frame(rt.streams["stdout"], b"partial"))
        writer.write(b"\x80\x02\x00\x01\x00\x00\x00\x00")  # SPDY/2
        await writer.drain()
        await reader.read()

    url, _ = await runtime(garbage)
    session = await RuntimeSession.open(url, stdin=False, stdout=True, stderr=False, tty=False)
    got = await asyncio.wait_for(_collect(session), 10)
    await session.close()
    # the session ends; what came before the bad frame still counts
    assert [m.data for m in got] == [b"\x01partial"]


async def _collect(session: RuntimeSession) -> list[channels.Message]:
    return [m async for m in session]


async def test_output_is_taken_from_the_runtime_before_the_client_reads_it(runtime):
    """containerd drops a container's unread output when it exits (cutting the client's
    output and the log): the session must read it all without waiting for its client."""
    big = b"x" * (4 * 1024 * 1024)
    drained = asyncio.Event()

    async def script(rt, reader, writer, frames, codec):
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
        await read_until(rt, reader, frames, codec, writer, lambda: "stdout" in rt.streams)
        for i in range(0, len(big), spdy.MAX_DATA):
            writer.write(spdy.data_frame(rt.streams["stdout"], big[i:i + spdy.MAX_DATA]))
        writer.write(spdy.data_frame(rt.streams["error"], STATUS, fin=True))
        await writer.drain()
        drained.set()
        writer.write(spdy.goaway(0))
        await writer.drain()

    url, _ = await runtime(script)
    session = await RuntimeSession.open(url, stdin=False, stdout=True, stderr=False, tty=False)
    # Nobody reads the session yet: the runtime can still write everything.
    await asyncio.wait_for(drained.wait(), 10)
    got = await asyncio.wait_for(_collect(session), 10)
    await session.close()
    assert b"".join(m.data[1:] for m in got[:-1]) == big
    assert got[-1].data == bytes([channels.ERROR]) + STATUS
