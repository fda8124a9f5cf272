"""The client library's connection pools: watches, which hold a connection for minutes,
never take the connections a component's other requests (writes, its leader election
lease) need. With one pool, a controller manager watching every resource kind ran out
and lost its lease over and over."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from kybernetes.client.api import ApiClient
from kybernetes.client.resources import CONFIGMAPS, NAMESPACES


async def _serve() -> tuple[TestServer, asyncio.Event]:
    release = asyncio.Event()

    async def namespaces(request: web.Request) -> web.StreamResponse:
        # A watch that sends one event, then stays open until the test ends.
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        event = {"type": "ADDED", "object": {"kind": "Namespace", "metadata": {"name": "a"}}}
        await resp.write(orjson.dumps(event) + b"\n")
        await release.wait()
        return resp

    async def version(_request: web.Request) -> web.Response:
        return web.json_response({"major": "1"})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces", namespaces)
    app.router.add_get("/api/v1/configmaps", namespaces)
    app.router.add_get("/version", version)
    server = TestServer(app)
    await server.start_server()
    return server, release


async def test_requests_get_through_while_watches_hold_more_connections_than_the_limit():
    server, release = await _serve()
    client = ApiClient(str(server.make_url("")), max_connections=1)
    seen: list[str] = []

    async def watch(res) -> None:
        async for kind, _obj in client.watch(res):
            seen.append(kind)

    watches = [asyncio.create_task(watch(NAMESPACES)), asyncio.create_task(watch(CONFIGMAPS))]
    try:
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.02)
        assert seen == ["ADDED", "ADDED"], "both watches are open at once, beyond the limit of 1"
        assert await client.request("GET", "/version", timeout=5.0) == {"major": "1"}
    finally:
        release.set()
        for t in watches:
            t.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        await client.close()
        await server.close()


async def test_a_watch_reads_events_however_the_stream_is_cut():
    # Events as a server sends them in a burst: several in one write, one object split
    # over several writes, blank keep-alive lines between them.
    events = [{"type": "ADDED", "object": {"kind": "Namespace", "metadata": {"name": f"n{i}", "x": "y" * (i * 50)}}}
              for i in range(40)]
    stream = b"".join(orjson.dumps(e) + (b"\n\n" if i % 7 == 0 else b"\n") for i, e in enumerate(events))
    cuts = [0, 3, 4, 500, 501, 2000, 2001, 2002, len(stream) - 1, len(stream)]

    async def namespaces(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for start, end in zip(cuts, cuts[1:], strict=False):
            await resp.write(stream[start:end])
            await asyncio.sleep(0.01)  # each part its own chunk
        return resp

    app = web.Application()
    app.router.add_get("/api/v1/namespaces", namespaces)
    server = TestServer(app)
    await server.start_server()
    client = ApiClient(str(server.make_url("")))
    try:
        got = [obj async for _kind, obj in client.watch(NAMESPACES)]
    finally:
        await client.close()
        await server.close()
    assert got == [e["object"] for e in events]
