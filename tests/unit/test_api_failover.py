"""A client that knows several API servers (issue 17): it fails over to the next when the one
in use cannot be reached, repeats only what is safe to repeat, and learns the servers from
the `kubernetes` Endpoints."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kybernetes.client import api, apiservers
from kybernetes.client.api import ApiClient, may_send_elsewhere
from kybernetes.client.resources import CONFIGMAPS
from kybernetes.testing.cluster import free_port


class FakeApiServer:
    """A tiny API server that counts requests and can cut a connection off mid-request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: dict[str, int] = {}
        self.cut_off = False
        self.endpoints: dict | None = None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.method] = self.hits.get(request.method, 0) + 1
        await request.read()
        if self.cut_off:
            # The request arrived (and may have been acted on), the answer never leaves.
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(1)
        if request.path == "/api/v1/namespaces/default/endpoints/kubernetes":
            if self.endpoints is None:
                raise web.HTTPNotFound()
            return web.json_response(self.endpoints)
        if request.query.get("watch") == "true":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            ev = {"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": self.name}}}
            await resp.write(orjson.dumps(ev) + b"\n")
            return resp
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": self.name}})


@pytest.fixture
async def two():
    a, b = FakeApiServer("a"), FakeApiServer("b")
    await a.server.start_server()
    await b.server.start_server()
    yield a, b
    await a.server.close()
    await b.server.close()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


async def test_a_read_goes_to_the_next_server_when_the_first_cannot_be_reached(two) -> None:
    _, b = two
    dead = dead_url()
    client = ApiClient([dead, b.url])
    try:
        got = await client.get(CONFIGMAPS, "default", "x")
        assert got["metadata"]["name"] == "b"
        assert client.base_url == b.url, "the client sticks to the server that answered"
        assert (await client.get(CONFIGMAPS, "default", "x"))["metadata"]["name"] == "b"
    finally:
        await client.close()


async def test_a_write_that_never_reached_a_server_is_sent_to_the_next(two) -> None:
    _, b = two
    client = ApiClient([dead_url(), b.url])
    try:
        created = await client.create(CONFIGMAPS, "default", {"metadata": {"name": "x"}})
        assert created["metadata"]["name"] == "b"
        assert b.hits == {"POST": 1}
    finally:
        await client.close()


async def test_a_server_stopped_while_in_use_is_left_for_the_other(two) -> None:
    a, b = two
    client = ApiClient([a.url, b.url])
    try:
        assert (await client.get(CONFIGMAPS, "default", "x"))["metadata"]["name"] == "a"
        await a.server.close()
        assert (await client.get(CONFIGMAPS, "default", "x"))["metadata"]["name"] == "b"
        events = [e async for e in client.watch(CONFIGMAPS, "default")]
        assert events == [("ADDED", {"kind": "ConfigMap", "metadata": {"name": "b"}})]
    finally:
        await client.close()


async def test_a_write_cut_off_is_not_repeated_but_a_read_is(two) -> None:
    a, b = two
    a.cut_off = True
    client = ApiClient([a.url, b.url])
    try:
        with pytest.raises(aiohttp.ClientError):
            await client.create(CONFIGMAPS, "default", {"metadata": {"name": "x"}})
        assert a.hits == {"POST": 1} and b.hits == {}, "the write may have been applied: not sent twice"
        assert client.base_url == b.url, "later requests go to the other server"
        client.set_servers([a.url, b.url])
        client.server_failed(b.url)
        assert client.base_url == a.url
        assert (await client.get(CONFIGMAPS, "default", "x"))["metadata"]["name"] == "b"
        # (aiohttp itself may send a read again once on the same server before giving up.)
        assert a.hits["POST"] == 1 and a.hits["GET"] >= 1 and b.hits == {"GET": 1}
    finally:
        await client.close()


async def test_one_server_alone_fails_as_before() -> None:
    client = ApiClient(dead_url())
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await client.get(CONFIGMAPS, "default", "x")
    finally:
        await client.close()


async def test_every_server_down_fails_after_trying_each_once() -> None:
    client = ApiClient([dead_url(), dead_url(), dead_url()])
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await client.get(CONFIGMAPS, "default", "x")
    finally:
        await client.close()


def test_which_failures_may_be_sent_elsewhere() -> None:
    refused = aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]
    cut = aiohttp.ServerDisconnectedError()
    assert may_send_elsewhere("POST", refused) and may_send_elsewhere("GET", refused)
    assert may_send_elsewhere("GET", cut)
    assert not may_send_elsewhere("POST", cut) and not may_send_elsewhere("PATCH", cut)
    assert not may_send_elsewhere("GET", TimeoutError()), "a slow server is not a gone one"


def test_set_servers_keeps_the_one_in_use() -> None:
    client = ApiClient(["https://a:6443", "https://b:6443/"])
    client.server_failed("https://a:6443")
    assert client.base_url == "https://b:6443"
    client.set_servers(["https://c:6443", "https://b:6443", "https://c:6443"])
    assert client.servers == ["https://c:6443", "https://b:6443"] and client.base_url == "https://b:6443"
    client.set_servers(["https://d:6443"])
    assert client.base_url == "https://d:6443"
    client.set_servers([])
    assert client.servers == ["https://d:6443"]
    with pytest.raises(ValueError):
        ApiClient([])


def test_endpoint_urls_from_the_kubernetes_endpoints() -> None:
    eps = {"subsets": [
        {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}], "ports": [{"name": "https", "port": 6443}]},
        {"addresses": [{"ip": "fd00::1"}], "ports": [{"name": "https", "port": 7443}]},
        {"addresses": [{"ip": "10.0.0.9"}], "ports": []},
    ]}
    assert apiservers.endpoint_urls(eps) == ["https://10.0.0.1:6443", "https://10.0.0.2:6443",
                                             "https://[fd00::1]:7443"]
    assert apiservers.endpoint_urls({"metadata": {}}) == []
    assert apiservers.endpoint_urls(None) == []


def test_known_servers_keep_the_joined_one_and_survive_an_empty_list() -> None:
    found = ["https://10.0.0.1:6443", "https://10.0.0.2:6443"]
    assert apiservers.known_servers(found, "https://lb.example:6443/", []) == [*found, "https://lb.example:6443"]
    assert apiservers.known_servers(found, "https://10.0.0.2:6443", []) == found
    assert apiservers.known_servers([], "https://lb:6443", found) == found


async def test_the_client_learns_the_servers_from_the_endpoints(two) -> None:
    a, b = two
    port_b = int(b.url.rsplit(":", 1)[1])
    a.endpoints = {"kind": "Endpoints", "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                                                      "ports": [{"name": "https", "port": port_b}]}]}
    client = ApiClient(a.url)
    try:
        servers = await apiservers.refresh_servers(client, a.url)
        assert servers == [f"https://127.0.0.1:{port_b}", a.url]
        assert client.base_url == a.url, "the server in use stays in use"
    finally:
        await client.close()


def test_the_known_servers_survive_a_restart_in_a_file(tmp_path) -> None:
    path = str(tmp_path / "apiservers.json")
    assert apiservers.load_servers(path) == []
    apiservers.save_servers(path, ["https://10.0.0.1:6443", "https://10.0.0.2:6443"])
    assert apiservers.load_servers(path) == ["https://10.0.0.1:6443", "https://10.0.0.2:6443"]
    (tmp_path / "apiservers.json").write_text('{"servers": ["ftp://x", 3, "http://10.0.0.3:8080"]}')
    assert apiservers.load_servers(path) == ["http://10.0.0.3:8080"]
    (tmp_path / "apiservers.json").write_text("{not json")
    assert apiservers.load_servers(path) == []


async def test_keeping_the_servers_fresh_writes_them_down(two, tmp_path) -> None:
    a, _ = two
    a.endpoints = {"kind": "Endpoints", "subsets": [{"addresses": [{"ip": "10.9.9.9"}],
                                                      "ports": [{"name": "https", "port": 6443}]}]}
    path = str(tmp_path / "apiservers.json")
    client = ApiClient(a.url)
    task = asyncio.create_task(apiservers.keep_servers_fresh(client, a.url, every=0.05, state_file=path))
    try:
        for _ in range(100):
            if apiservers.load_servers(path):
                break
            await asyncio.sleep(0.02)
        assert client.servers == ["https://10.9.9.9:6443", a.url]
        assert apiservers.load_servers(path) == ["https://10.9.9.9:6443", a.url]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def test_a_server_that_never_answers_a_connect_is_given_up_for_the_next(two, monkeypatch) -> None:
    _, b = two
    # A listener that accepts nothing, its queue filled: a further connect is never answered,
    # as with a machine that has gone away.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(silent.getsockname())
        fillers.append(c)
    monkeypatch.setattr(api, "FAILOVER_CONNECT_SECONDS", 0.5)
    client = ApiClient([f"http://127.0.0.1:{silent.getsockname()[1]}", b.url])
    try:
        got = await asyncio.wait_for(client.get(CONFIGMAPS, "default", "x"), timeout=10)
        assert got["metadata"]["name"] == "b" and client.base_url == b.url
    finally:
        await client.close()
        for c in (*fillers, silent):
            c.close()
