"""exec/attach protocols without a network: the WebSocket subprotocols' framing
(api/channels.py), the SPDY session's decisions (apiserver/remotecommand.py), and
hostile input to both. Real clients against real containers: tests/e2e/test_exec_protocols.py."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import struct
import zlib
from typing import Any, NamedTuple

import pytest
from multidict import CIMultiDict

from kybernetes.api import channels, spdy
from kybernetes.api.errors import ApiError
from kybernetes.apiserver import remotecommand as rc

FAILURE = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "command terminated with non-zero exit code: exit status 3",
                      "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}).encode()
SUCCESS = b'{"metadata":{},"status":"Success"}'


# --- WebSocket subprotocols ----------------------------------------------------------------------

def test_negotiation_follows_the_clients_order():
    ws = channels.WEBSOCKET_PROTOCOLS
    assert channels.negotiate(["v4.channel.k8s.io", "v5.channel.k8s.io"], ws) == "v4.channel.k8s.io"
    assert channels.negotiate(["x", "base64.channel.k8s.io", "channel.k8s.io"], ws) == "base64.channel.k8s.io"
    # v2 and v3 exist over SPDY only, as upstream
    assert channels.negotiate(["v3.channel.k8s.io", "v2.channel.k8s.io"], ws) is None
    assert channels.offered_protocols(["a, b", " c ", ""]) == ["a", "b", "c"]


@pytest.mark.parametrize("proto, message, event", [
    (channels.V4, b"\x00abc", (0, b"abc")),
    (channels.V4, "\x04{}", (4, b"{}")),  # a text message is read like a binary one
    (channels.V1, b"\x00", (0, b"")),
    (channels.V4_BASE64, "0" + base64.b64encode(b"hi\n").decode(), (0, b"hi\n")),
    (channels.V1_BASE64, b"4" + base64.b64encode(b'{"Width":1}'), (4, b'{"Width":1}')),
    (channels.V5, b"\xff\x00", (0, None)),
    (channels.V5, b"\xff\x04", (4, None)),
])
def test_client_messages_decode_per_subprotocol(proto, message, event):
    assert channels.decode_message(proto, message) == event


@pytest.mark.parametrize("proto, message", [
    (channels.V4, b""),
    (channels.V4, b"\x05data"),  # no such channel
    (channels.V4, b"\xff\x00"),  # v4 has no close signal: channel 255 does not exist
    (channels.V5, b"\xff"),  # a close signal names one channel
    (channels.V5, b"\xff\x00\x01"),
    (channels.V5, b"\xff\x09"),
    (channels.V4_BASE64, "0not base64!"),
    (channels.V4_BASE64, "9" + base64.b64encode(b"x").decode()),
    (channels.V4_BASE64, "/" + base64.b64encode(b"x").decode()),  # below '0'
])
def test_messages_to_drop(proto, message):
    assert channels.decode_message(proto, message) is None


def test_server_messages_encode_per_subprotocol():
    assert channels.encode_message(channels.V4, 1, b"out") == b"\x01out"
    assert channels.encode_message(channels.V1_BASE64, 2, b"err\n") == "2" + base64.b64encode(b"err\n").decode()
    for proto in (channels.V4_BASE64, channels.V1_BASE64):
        assert channels.decode_message(proto, channels.encode_message(proto, 3, b"\x00\xff")) == (3, b"\x00\xff")


def test_status_is_json_from_v4_and_the_failures_text_before():
    assert channels.status_for(True, FAILURE) == FAILURE
    assert channels.status_for(True, SUCCESS) == SUCCESS
    assert channels.status_for(False, FAILURE) == b"command terminated with non-zero exit code: exit status 3"
    assert channels.status_for(False, SUCCESS) == b""
    assert channels.status_for(False, b"not json") == b"not json"
    assert channels.status_for(False, b"[1]") == b"[1]"


class Msg(NamedTuple):
    type: int
    data: Any


class Socket:
    """A scripted WebSocket end that records what it is sent."""

    def __init__(self, incoming: list[Msg], hold_open: bool = False) -> None:
        self.incoming, self.hold_open = incoming, hold_open
        self.sent: list[Any] = []
        self.closed = False

    def __aiter__(self) -> Socket:
        return self

    async def __anext__(self) -> Msg:
        await asyncio.sleep(0)
        if self.incoming:
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


async def test_bridge_speaks_v5_to_the_agent_whatever_the_client_speaks():
    b64 = base64.b64encode
    client = Socket([Msg(channels.OPCODE_TEXT, "0" + b64(b"ls\n").decode()), Msg(channels.OPCODE_TEXT, "0%%%"),
                     Msg(channels.OPCODE_TEXT, "4" + b64(b'{"Width":3,"Height":4}').decode())], hold_open=True)
    agent = Socket([Msg(channels.OPCODE_BINARY, b"\x01out"), Msg(channels.OPCODE_BINARY, b"\x02err"),
                    Msg(channels.OPCODE_BINARY, b"\x00echo?"), Msg(channels.OPCODE_BINARY, b"\x03" + FAILURE),
                    Msg(channels.OPCODE_CLOSE, None)])
    # Let the client's messages through before the agent's close ends the session.
    agent.incoming[:0] = [Msg(0x9, None)] * 5  # pings: neither data nor an end
    await channels.bridge(channels.WebSocketFront(client, channels.V1_BASE64), agent)
    assert agent.sent == [b"\x00ls\n", b'\x04{"Width":3,"Height":4}']
    assert client.sent == ["1" + b64(b"out").decode(), "2" + b64(b"err").decode(),
                           "3" + b64(b"command terminated with non-zero exit code: exit status 3").decode()]
    assert client.closed and agent.closed


async def test_bridge_passes_the_v5_close_signal_and_ends_when_the_client_goes():
    client = Socket([Msg(channels.OPCODE_BINARY, b"\x00data"), Msg(channels.OPCODE_BINARY, b"\xff\x00"),
                     Msg(channels.OPCODE_CLOSE, None)])
    agent = Socket([], hold_open=True)
    await channels.bridge(channels.WebSocketFront(client, channels.V5), agent)
    assert agent.sent == [b"\x00data", b"\xff\x00"]
    assert client.closed and agent.closed


# --- SPDY: negotiation and the streams a client opens ----------------------------------------------

def headers(**values: str | list[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for k, v in values.items():
        for one in [v] if isinstance(v, str) else v:
            out.add(k.replace("_", "-"), one)
    return out


def test_request_negotiation():
    spdy_upgrade = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    offers = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"]
    assert rc.negotiate_request(headers(**spdy_upgrade, X_Stream_Protocol_Version=offers)) == rc.Negotiated(
        True, "v5.channel.k8s.io")
    assert rc.negotiate_request(headers(**spdy_upgrade, X_Stream_Protocol_Version="v2.channel.k8s.io, channel.k8s.io")
                                ).protocol == "v2.channel.k8s.io"
    assert rc.negotiate_request(headers(Upgrade="websocket", Connection="Upgrade",
                                        Sec_WebSocket_Protocol="foo, base64.channel.k8s.io")) == rc.Negotiated(
        False, "base64.channel.k8s.io")
    assert rc.negotiate_request(headers(Upgrade="websocket", Connection="Upgrade")) == rc.Negotiated(False, "")
    with pytest.raises(ApiError) as e:
        rc.negotiate_request(headers(**spdy_upgrade, X_Stream_Protocol_Version="v9.channel.k8s.io"))
    assert e.value.code == 403 and "unable to negotiate protocol" in e.value.message
    assert e.value.headers["X-Accepted-Stream-Protocol-Versions"].startswith("v5.channel.k8s.io, v4.channel.k8s.io")
    with pytest.raises(ApiError) as e:
        rc.negotiate_request(headers(**spdy_upgrade))
    assert e.value.code == 400 and "X-Stream-Protocol-Version is required" in e.value.message
    with pytest.raises(ApiError) as e:
        rc.negotiate_request(headers(Upgrade="websocket", Sec_WebSocket_Protocol="v3.channel.k8s.io"))
    assert e.value.code == 400
    with pytest.raises(ApiError) as e:
        rc.negotiate_request(headers())
    assert e.value.code == 400 and "Upgrade request required" in e.value.message


def test_expected_streams():
    v4, v2 = rc.SPDY_VERSIONS["v4.channel.k8s.io"], rc.SPDY_VERSIONS["v2.channel.k8s.io"]
    assert rc.expected_streams(v4, {"stdout": "true", "stderr": "true"}) == {"error", "stdout", "stderr"}
    assert rc.expected_streams(v4, {"stdin": "1", "stdout": "1", "stderr": "1", "tty": "1"}) == {
        "error", "stdin", "stdout", "resize"}  # no stderr with a TTY
    assert rc.expected_streams(v2, {"stdin": "true", "tty": "true"}) == {"error", "stdin"}  # no resize before v3
    assert rc.expected_streams(v4, {"stdout": "false"}) == {"error"}


# --- SPDY: the session --------------------------------------------------------------------------

class Client:
    """A client's side of the session: frames built by hand, the server's frames parsed."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zdict=spdy.HEADER_DICTIONARY)
        self.inflate = spdy.FrameReader(spdy.HeaderCodec())

    def syn(self, sid: int, kind: str, fin: bool = False) -> bytes:
        block = struct.pack(">I", 1) + struct.pack(">I", 10) + b"streamtype" + struct.pack(">I", len(kind)) + kind.encode()
        body = struct.pack(">IIH", sid, 0, 0) + self.deflate.compress(block) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        return spdy.control_frame(spdy.SYN_STREAM, 1 if fin else 0, body)


class Session:
    def __init__(self, version: str = "v4.channel.k8s.io", expected: tuple[str, ...] = ("error", "stdout")) -> None:
        self.wire = bytearray()
        self.front = rc.SpdyFront(self._write, rc.SPDY_VERSIONS[version], frozenset(expected))
        self.client = Client()

    async def _write(self, data: bytes) -> None:
        self.wire += data

    def frames(self) -> list[spdy.Frame]:
        out = self.client.inflate.feed(bytes(self.wire))
        self.wire.clear()
        return out

    async def events(self) -> list[Any]:
        out = []
        while not self.front._events.empty():
            out.append(await self.front.receive())
        return out


async def test_streams_are_answered_and_the_session_is_ready_when_all_are_open():
    s = Session(expected=("error", "stdin", "stdout"))
    await s.front.feed(s.client.syn(1, "error") + s.client.syn(3, "stdin"))
    assert not s.front.ready.is_set()
    await s.front.feed(s.client.syn(5, "stdout"))
    assert s.front.ready.is_set()
    assert [(f.type, f.stream_id) for f in s.frames()] == [(spdy.SYN_REPLY, 1), (spdy.SYN_REPLY, 3),
                                                           (spdy.SYN_REPLY, 5)]


async def test_stdin_data_half_close_resize_and_ping():
    s = Session("v3.channel.k8s.io", expected=("error", "stdin", "stdout", "resize"))
    c = s.client
    wire = c.syn(1, "error") + c.syn(3, "stdin") + c.syn(5, "stdout") + c.syn(7, "resize")
    wire += spdy.data_frame(3, b"abc") + spdy.data_frame(7, b'{"Width":80,"Height":24}')
    wire += spdy.data_frame(5, b"ignored: the client does not write stdout") + spdy.data_frame(3, b"", fin=True)
    wire += spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7))
    # split anywhere: frames are read out of a byte stream
    for i in range(0, len(wire), 7):
        await s.front.feed(wire[i:i + 7])
    assert await s.events() == [(channels.STDIN, b"abc"), (channels.RESIZE, b'{"Width":80,"Height":24}'),
                                (channels.STDIN, None)]
    assert s.frames()[-1].type == spdy.PING


async def test_output_goes_to_its_stream_and_the_status_per_version():
    for version, status in (("v4.channel.k8s.io", FAILURE),
                            ("v3.channel.k8s.io", b"command terminated with non-zero exit code: exit status 3")):
        s = Session(version, expected=("error", "stdout", "stderr"))
        await s.front.feed(s.client.syn(1, "error") + s.client.syn(3, "stdout") + s.client.syn(5, "stderr"))
        s.frames()
        await s.front.send(channels.STDOUT, b"out")
        await s.front.send(channels.STDERR, b"err")
        await s.front.send(channels.ERROR, FAILURE)
        await s.front.finish()
        frames = s.frames()
        assert [(f.stream_id, f.payload) for f in frames[:3]] == [(3, b"out"), (5, b"err"), (1, status)]
        # then every stream ends, then the session
        assert {(f.stream_id, f.fin) for f in frames[3:6]} == {(1, True), (3, True), (5, True)}
        assert frames[6].type == spdy.GOAWAY


async def test_success_on_a_pre_v4_error_stream_writes_nothing():
    s = Session("channel.k8s.io", expected=("error",))
    await s.front.feed(s.client.syn(1, "error"))
    s.frames()
    await s.front.send(channels.ERROR, SUCCESS)
    assert s.frames() == []


async def test_stdin_opened_with_fin_is_ended_at_once():
    s = Session(expected=("error", "stdin"))
    await s.front.feed(s.client.syn(1, "error") + s.client.syn(3, "stdin", fin=True))
    assert await s.events() == [(channels.STDIN, None)] and s.front.ready.is_set()


async def test_unknown_duplicate_and_version_less_streams_are_refused():
    s = Session("v2.channel.k8s.io", expected=("error",))
    c = s.client
    await s.front.feed(c.syn(1, "error") + c.syn(3, "error") + c.syn(5, "resize") + c.syn(7, "data"))
    frames = s.frames()
    assert [(f.type, f.stream_id) for f in frames] == [(spdy.SYN_REPLY, 1), (spdy.RST_STREAM, 3),
                                                       (spdy.RST_STREAM, 5), (spdy.RST_STREAM, 7)]
    await s.front.send(channels.STDOUT, b"no stdout stream: dropped")
    assert s.frames() == []


async def test_reset_stdin_ends_it_and_goaway_ends_the_session():
    s = Session(expected=("error", "stdin"))
    await s.front.feed(s.client.syn(1, "error") + s.client.syn(3, "stdin"))
    await s.front.feed(spdy.rst_stream(3, 5) + spdy.rst_stream(1, 5) + spdy.goaway(3))
    assert await s.events() == [(channels.STDIN, None), None]
    assert await s.front.receive() is None and await s.front.receive() is None
    s.frames()
    await s.front.send(channels.ERROR, SUCCESS)  # the client reset the error stream: nothing goes there
    assert s.frames() == []


@pytest.mark.parametrize("wire", [
    spdy.control_frame(spdy.SYN_STREAM, 0, b"\x00\x00"),  # truncated
    spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIH", 1, 0, 0) + b"not zlib"),
    b"\x80\x02\x00\x01\x00\x00\x00\x00",  # SPDY/2
])
async def test_malformed_frames_raise(wire):
    with pytest.raises(spdy.SpdyError):
        await Session().front.feed(wire)


async def test_frames_before_a_malformed_one_still_count():
    s = Session(expected=("error",))
    with pytest.raises(spdy.SpdyError):
        await s.front.feed(s.client.syn(1, "error") + b"\x80\x02\x00\x01\x00\x00\x00\x00")
    assert [f.type for f in s.frames()] == [spdy.SYN_REPLY]
    with pytest.raises(spdy.SpdyError):  # and the session stays broken
        await s.front.feed(spdy.data_frame(1, b"x"))


async def test_stream_ids_must_be_odd_and_increasing():
    s = Session()
    await s.front.feed(s.client.syn(5, "error"))
    with pytest.raises(spdy.SpdyError):
        await s.front.feed(s.client.syn(3, "stdout"))
    with pytest.raises(spdy.SpdyError):
        await Session().front.feed(Client().syn(2, "error"))


async def test_header_block_that_inflates_without_end_is_refused():
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.HEADER_DICTIONARY)
    block = struct.pack(">I", 1) + struct.pack(">I", 4) + b"name" + struct.pack(">I", 8 << 20) + b"v" * (8 << 20)
    bomb = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 100_000
    with pytest.raises(spdy.SpdyError, match="larger than"):
        await Session().front.feed(spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIH", 1, 0, 0) + bomb))


async def test_any_bytes_either_parse_or_raise_spdy_error():
    rng = random.Random(11)
    frame_starts = [b"\x80\x03\x00\x01", b"\x80\x03\x00\x03", b"\x80\x03\x00\x06", b"\x80\x03\x00\x07",
                    b"\x00\x00\x00\x03", b"\x80\x03\x00\x63", b""]
    for _ in range(500):
        s = Session(expected=("error", "stdin", "stdout"))
        # plausible frame starts followed by noise reach deeper than noise alone
        data = s.client.syn(1, "error") + s.client.syn(3, "stdin") + rng.choice(frame_starts) + rng.randbytes(
            rng.randrange(0, 120))
        cut = rng.randrange(1, 40)
        try:
            async with asyncio.timeout(5):
                for i in range(0, len(data), cut):
                    await s.front.feed(data[i:i + cut])
        except spdy.SpdyError:
            pass
