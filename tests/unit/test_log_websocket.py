"""pods/log read over a WebSocket (as Kubernetes' conformance spec and Go clients do):
the log's bytes arrive as binary messages, or base64 text with base64.binary.k8s.io,
and the socket closes at the log's end."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from kybernetes.apiserver.virtual import log_over_websocket


async def _serve(chunks: list[bytes], hold: asyncio.Event | None = None,
                 ended: asyncio.Event | None = None) -> TestServer:
    async def source() -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk
            if hold is not None:
                await hold.wait()  # a followed log that has nothing more yet
        finally:
            if ended is not None:
                ended.set()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await log_over_websocket(request, source())

    app = web.Application()
    app.router.add_get("/log", handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def _read_all(ws: aiohttp.ClientWebSocketResponse) -> list[aiohttp.WSMessage]:
    out = []
    async for msg in ws:
        out.append(msg)
    return out


async def test_log_arrives_as_binary_messages_then_the_socket_closes() -> None:
    server = await _serve([b"container is alive\n", b"second line\n"])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.make_url("/log"), protocols=("binary.k8s.io",)) as ws:
                assert ws.protocol == "binary.k8s.io"
                messages = await asyncio.wait_for(_read_all(ws), 10)
            assert [m.type for m in messages] == [aiohttp.WSMsgType.BINARY] * 2
            assert b"".join(m.data for m in messages) == b"container is alive\nsecond line\n"
            # No protocol offered: binary too, as kube-apiserver's default reader protocol.
            async with session.ws_connect(server.make_url("/log")) as ws:
                messages = await asyncio.wait_for(_read_all(ws), 10)
            assert b"".join(m.data for m in messages) == b"container is alive\nsecond line\n"
    finally:
        await server.close()


async def test_base64_protocol_sends_text_messages() -> None:
    server = await _serve([b"\x00\xffbytes"])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.make_url("/log"), protocols=("base64.binary.k8s.io",)) as ws:
                assert ws.protocol == "base64.binary.k8s.io"
                messages = await asyncio.wait_for(_read_all(ws), 10)
        assert [m.type for m in messages] == [aiohttp.WSMsgType.TEXT]
        assert base64.b64decode(messages[0].data) == b"\x00\xffbytes"
    finally:
        await server.close()


async def test_a_followed_log_stops_when_the_client_leaves() -> None:
    hold, ended = asyncio.Event(), asyncio.Event()
    server = await _serve([b"first\n"], hold=hold, ended=ended)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.make_url("/log"), protocols=("binary.k8s.io",)) as ws:
                msg = await asyncio.wait_for(ws.receive(), 10)
                assert msg.data == b"first\n"
        # The source is let go although it never ended by itself.
        await asyncio.wait_for(ended.wait(), 10)
        assert not hold.is_set()
    finally:
        await server.close()
