"""SPDY/3.1 framing, as much of it as port-forward, exec and attach need.

Exec and attach over SPDY (see apiserver/remotecommand.py) run on the upgraded HTTP
connection itself, one stream per channel. For port-forward, kubectl multiplexes every forwarded TCP connection over one SPDY session: for each
connection it opens an `error` stream and a `data` stream (SYN_STREAM with headers
`streamtype`, `port` and `requestid`). Since 1.31 the session is tunnelled in
binary WebSocket messages (subprotocol `SPDY/3.1+portforward.k8s.io`); the bytes
are the same as on a raw upgraded connection, and message boundaries carry no
meaning.

This module owns the wire format only: parsing frames out of a byte stream,
building the frames a server sends, and the header blocks (zlib with the
protocol's fixed dictionary, one compression context per direction for the whole
session). Flow control (WINDOW_UPDATE) is not enforced: the Go implementation
kubectl uses neither sends nor honours it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01

# RST_STREAM status codes used here.
PROTOCOL_ERROR = 1
REFUSED_STREAM = 3

MAX_DATA = (1 << 24) - 1
# A header block inflates to at most this much: the dictionary makes a small block
# expand a thousandfold, and the few headers these protocols use are tiny.
MAX_HEADER_BLOCK = 256 * 1024
_HEADER = struct.Struct(">II")


def _header_dictionary() -> bytes:
    """The zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1): common
    header names and values, each with a 4-byte length, then a run of common text."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding accept-language "
        "accept-ranges age allow authorization cache-control connection content-base "
        "content-encoding content-language content-length content-location content-md5 "
        "content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status"
    ).split() + ["200 OK"] + "version HTTP/1.1 url public set-cookie keep-alive origin".split()
    prefixed = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    codes = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    reasons = ("203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
               "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
               "503 Service Unavailable")
    dates = "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    values = ("chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
              "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
              "charset=iso-8859-1,utf-,*,enq=0.")
    return prefixed + (codes + reasons + dates + values).encode()


HEADER_DICTIONARY = _header_dictionary()


class SpdyError(Exception):
    """The peer broke the protocol; the session cannot go on."""


@dataclass
class Frame:
    """One frame. Control frames have `type` > 0; data frames `type` 0 and `stream_id`."""

    type: int
    flags: int
    stream_id: int = 0
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class HeaderCodec:
    """Header blocks in one direction of a session. zlib's state carries over from
    block to block, so a session needs exactly one decoder and one encoder."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise SpdyError(f"bad header block: {e}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(raw)

    def encode(self, headers: dict[str, str]) -> bytes:
        return self._deflate.compress(header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def header_block(headers: dict[str, str]) -> bytes:
    """The uncompressed name/value block: a count, then length-prefixed pairs."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def parse_header_block(raw: bytes) -> dict[str, str]:
    """Names lower-cased; several values of one name (NUL-separated) joined by ','."""
    try:
        (count,), pos = struct.unpack_from(">I", raw), 4
        out: dict[str, str] = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (v,) = struct.unpack_from(">I", raw, pos)
            value = raw[pos + 4:pos + 4 + v].decode()
            pos += 4 + v
            if len(name) == 0 or pos > len(raw):
                raise SpdyError("truncated header block")
            out[name.lower()] = value.replace("\x00", ",")
        return out
    except (struct.error, UnicodeDecodeError) as e:
        raise SpdyError(f"bad header block: {e}") from None


class FrameReader:
    """Frames out of a byte stream fed in arbitrary pieces."""

    def __init__(self, headers: HeaderCodec) -> None:
        self._buf = bytearray()
        self._headers = headers
        self._error: SpdyError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data`; SpdyError if one of them is malformed."""
        frames, error = self.parse(data)
        if error is not None:
            raise error
        return frames

    def parse(self, data: bytes) -> tuple[list[Frame], SpdyError | None]:
        """The frames completed by `data`, up to the first malformed one, and its error:
        what a peer sent before breaking the protocol still counts."""
        if self._error is not None:
            return [], self._error
        self._buf += data
        frames: list[Frame] = []
        try:
            while len(self._buf) >= 8:
                first, second = _HEADER.unpack_from(self._buf)
                length = second & 0xFFFFFF
                if len(self._buf) < 8 + length:
                    break
                body = bytes(self._buf[8:8 + length])
                del self._buf[:8 + length]
                flags = second >> 24
                if not first & 0x80000000:
                    frames.append(Frame(0, flags, first & 0x7FFFFFFF, body))
                    continue
                version, ftype = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frames.append(self._control(ftype, flags, body))
        except SpdyError as e:
            self._error = e
            self._buf.clear()
        return frames, self._error

    def _control(self, ftype: int, flags: int, body: bytes) -> Frame:
        try:
            if ftype == SYN_STREAM:
                (sid,) = struct.unpack_from(">I", body)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, headers=self._headers.decode(body[10:]))
            if ftype in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", body)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, headers=self._headers.decode(body[4:]))
            if ftype in (RST_STREAM, WINDOW_UPDATE):
                (sid,) = struct.unpack_from(">I", body)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, body[4:])
        except struct.error:
            raise SpdyError(f"truncated control frame of type {ftype}") from None
        # PING, GOAWAY, SETTINGS and unknown types keep their body as is.
        return Frame(ftype, flags, 0, body)


def control_frame(ftype: int, flags: int, body: bytes) -> bytes:
    return _HEADER.pack(0x80000000 | (VERSION << 16) | ftype, (flags << 24) | len(body)) + body


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    if len(data) > MAX_DATA:
        raise ValueError("SPDY data frame too large")
    return _HEADER.pack(stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def syn_stream(codec: HeaderCodec, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
    """A client's new stream: no associated stream, priority 0, slot 0."""
    return control_frame(SYN_STREAM, FLAG_FIN if fin else 0,
                         struct.pack(">IIH", stream_id, 0, 0) + codec.encode(headers))


def syn_reply(codec: HeaderCodec, stream_id: int, headers: dict[str, str] | None = None,
              fin: bool = False) -> bytes:
    return control_frame(SYN_REPLY, FLAG_FIN if fin else 0,
                         struct.pack(">I", stream_id) + codec.encode(headers or {}))


def rst_stream(stream_id: int, status: int) -> bytes:
    return control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def goaway(last_stream_id: int, status: int = 0) -> bytes:
    return control_frame(GOAWAY, 0, struct.pack(">II", last_stream_id, status))
