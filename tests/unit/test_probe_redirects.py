"""httpGet probes and redirects, as the kubelet's: a redirect to the same host is
followed (its target decides), one to another host is not and passes with a warning,
a loop fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kybernetes.agent.probes import run_probe


async def _no_exec(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    raise AssertionError("an httpGet probe runs no command")


@pytest.fixture
async def server() -> AsyncIterator[int]:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(status=int(request.query.get("status", "200")))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["loc"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    app = web.Application()
    app.router.add_get("/loop", loop)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/redirect", redirect)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv.port or 0
    finally:
        await srv.close()


async def _probe(port: int, path: str) -> tuple[bool, str]:
    async with aiohttp.ClientSession() as session:
        return await run_probe({"httpGet": {"path": path, "port": port}, "timeoutSeconds": 5}, {}, "127.0.0.1",
                               _no_exec, session)


async def test_a_redirect_to_the_same_host_is_followed(server: int) -> None:
    assert await _probe(server, "/redirect?loc=/healthz") == (True, "")
    ok, why = await _probe(server, "/redirect?loc=/healthz%3Fstatus%3D500")
    assert not ok and "500" in why


async def test_a_redirect_to_another_host_is_not_followed_and_passes(server: int) -> None:
    # localhost is another host name than 127.0.0.1, although the same server answers it.
    ok, warning = await _probe(server, f"/redirect?loc=http://localhost:{server}/healthz%3Fstatus%3D500")
    # It passes with the kubelet's warning (a ProbeWarning event).
    assert ok and warning.startswith("Probe terminated redirects, Response body:")


async def test_a_redirect_loop_fails(server: int) -> None:
    ok, why = await _probe(server, "/loop")
    assert not ok and "redirect" in why
