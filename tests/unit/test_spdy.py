"""SPDY/3.1 framing and the port-forward session's decisions, without a network. The
real thing (kubectl against a real pod) is tested in tests/e2e/test_agent.py."""

from __future__ import annotations

import asyncio
import struct
import zlib

import aiohttp
import pytest

from kybernetes.api import spdy
from kybernetes.apiserver import portforward


class ClientSide:
    """What kubectl's framer would send: SYN_STREAMs with compressed headers, data."""

    def __init__(self) -> None:
        self.codec = spdy.HeaderCodec()

    def syn_stream(self, sid: int, headers: dict[str, str]) -> bytes:
        body = struct.pack(">IIH", sid, 0, 0) + self.codec.encode(headers)
        return spdy.control_frame(spdy.SYN_STREAM, 0, body)


def test_dictionary_is_the_protocols():
    d = spdy.HEADER_DICTIONARY
    assert d.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version" in d
    assert d.endswith(b"utf-,*,enq=0.")
    assert len(d) == 1423


def test_header_blocks_share_one_zlib_context_per_direction():
    sender, receiver = spdy.HeaderCodec(), spdy.HeaderCodec()
    first = sender.encode({"streamType": "error", "port": "8080", "requestID": "0"})
    second = sender.encode({"streamType": "data", "port": "8080", "requestID": "0"})
    assert receiver.decode(first) == {"streamtype": "error", "port": "8080", "requestid": "0"}
    assert receiver.decode(second) == {"streamtype": "data", "port": "8080", "requestid": "0"}
    # The second block refers back to the first: alone it cannot be read.
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderCodec().decode(second)


def test_blocks_use_the_dictionary():
    block = spdy.HeaderCodec().encode({"content-type": "text/plain"})
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(block)


def test_frames_are_found_however_the_bytes_are_split():
    client = ClientSide()
    wire = (client.syn_stream(1, {"streamtype": "data", "port": "80", "requestid": "7"})
            + spdy.data_frame(1, b"hello") + spdy.data_frame(1, b"", fin=True)
            + spdy.control_frame(spdy.PING, 0, struct.pack(">I", 1)))
    reader = spdy.FrameReader(spdy.HeaderCodec())
    frames = []
    for i in range(0, len(wire), 3):
        frames += reader.feed(wire[i:i + 3])
    assert [f.type for f in frames] == [spdy.SYN_STREAM, 0, 0, spdy.PING]
    assert frames[0].stream_id == 1 and frames[0].headers["requestid"] == "7"
    assert frames[1].payload == b"hello" and not frames[1].fin
    assert frames[2].fin and frames[3].payload == struct.pack(">I", 1)


def test_a_version_other_than_3_is_refused():
    frame = struct.pack(">II", 0x80000000 | (2 << 16) | spdy.PING, 4) + b"\x00\x00\x00\x01"
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader(spdy.HeaderCodec()).feed(frame)


def test_channel_prefix_is_dropped_across_messages():
    prefix = portforward.ChannelPrefix()
    assert prefix.strip(b"\x1f") == b""
    assert prefix.strip(b"\x90abc") == b"abc"
    assert prefix.strip(b"def") == b"def"


class Message:
    def __init__(self, data: bytes) -> None:
        self.type = aiohttp.WSMsgType.BINARY
        self.data = data


class Backend:
    """Stands in for the agent's WebSocket: answers `reply` once data arrives."""

    def __init__(self, port: int, reply: bytes = b"", error: bytes = b"") -> None:
        opening = struct.pack("<H", port)
        self.incoming: asyncio.Queue[Message | None] = asyncio.Queue()
        for data in (b"\x00" + opening, b"\x01" + opening) + ((b"\x01" + error,) if error else ()):
            self.incoming.put_nowait(Message(data))
        self.reply = reply
        self.sent: list[bytes] = []
        self.closed = False

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)
        if self.reply:
            self.incoming.put_nowait(Message(b"\x00" + self.reply))
        self.incoming.put_nowait(None)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Message:
        item = await self.incoming.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def close(self) -> None:
        self.closed = True


async def run_session(backend: Backend, dial_error: str = "") -> tuple[list[spdy.Frame], Backend]:
    out = bytearray()

    async def send(data: bytes) -> None:
        out.extend(data)

    async def dial(port: int) -> Backend:
        if dial_error:
            raise portforward.DialError(dial_error)
        return backend

    session = portforward.SpdyPortForward(send, dial)
    client = ClientSide()
    await session.feed(client.syn_stream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}))
    await session.feed(client.syn_stream(3, {"streamtype": "data", "port": "8080", "requestid": "0"}))
    await session.feed(spdy.data_frame(3, b"ping") + spdy.control_frame(spdy.PING, 0, b"\x00\x00\x00\x05"))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not session._by_request:
            break
    await session.close()
    return spdy.FrameReader(spdy.HeaderCodec()).feed(bytes(out)), backend


def test_session_relays_a_connection_and_ends_both_streams():
    frames, backend = asyncio.run(run_session(Backend(8080, reply=b"pong")))
    assert [(f.type, f.stream_id) for f in frames[:2]] == [(spdy.SYN_REPLY, 1), (spdy.SYN_REPLY, 3)]
    assert any(f.type == spdy.PING and f.payload == b"\x00\x00\x00\x05" for f in frames)
    data = [f for f in frames if f.type == 0]
    # The port-number openings are not the user's bytes.
    assert [(f.stream_id, f.payload, f.fin) for f in data] == [(3, b"pong", False), (1, b"", True), (3, b"", True)]
    assert backend.sent == [b"\x00ping"] and backend.closed


def test_session_reports_the_runtimes_error_on_the_error_stream():
    frames, _ = asyncio.run(run_session(Backend(8080, error=b"dial tcp4 127.0.0.1:8080: refused")))
    errors = [f.payload for f in frames if f.type == 0 and f.stream_id == 1 and f.payload]
    assert errors == [b"dial tcp4 127.0.0.1:8080: refused"]


def test_session_reports_an_unreachable_agent():
    frames, _ = asyncio.run(run_session(Backend(8080), dial_error="the node agent of n1 is not reachable"))
    errors = [f.payload for f in frames if f.type == 0 and f.stream_id == 1 and f.payload]
    assert errors == [b"the node agent of n1 is not reachable"]


def test_streams_with_a_bad_port_are_refused():
    async def go() -> list[spdy.Frame]:
        out = bytearray()

        async def send(data: bytes) -> None:
            out.extend(data)

        session = portforward.SpdyPortForward(send, lambda port: None)  # type: ignore[arg-type,return-value]
        await session.feed(ClientSide().syn_stream(1, {"streamtype": "data", "port": "70000", "requestid": "0"}))
        return spdy.FrameReader(spdy.HeaderCodec()).feed(bytes(out))

    frames = asyncio.run(go())
    assert [(f.type, f.stream_id) for f in frames] == [(spdy.RST_STREAM, 1)]
    assert frames[0].payload == struct.pack(">I", spdy.REFUSED_STREAM)
