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
