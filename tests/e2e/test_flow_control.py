"""Fair under load: a greedy LIST flood gets 429s while probes and a node's Lease renewals are served;
connections that never send a request are closed, while long watches are not."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import tempfile
import time

import aiohttp
import orjson
import pytest

from kybernetes.testing.cluster import ServerProcess

NODE_TOKEN = "flow-test-node-token"
HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def limited():
    data_dir = tempfile.mkdtemp(prefix="kyb-flow-")
    os.makedirs(os.path.join(data_dir, "pki"), mode=0o700)
    with open(os.path.join(data_dir, "pki", "tokens.csv"), "w") as f:
        f.write(f'{NODE_TOKEN},system:node:flow-node,uid-flow-node,"system:nodes"\n')
    srv = ServerProcess(data_dir=data_dir, extra_args=[
        "--disable-controllers", "--disable-scheduler",
        "--max-requests-inflight", "10", "--max-mutating-requests-inflight", "10",
        "--flow-queue-length", "2", "--flow-queue-wait", "2",
        "--request-header-timeout", str(HEADER_TIMEOUT), "--idle-connection-timeout", str(IDLE_TIMEOUT)])
    srv.start()
    yield srv
    srv.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


def _session(srv: ServerProcess, token: str) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=200),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                                 timeout=aiohttp.ClientTimeout(total=60))


def _admin_token(srv: ServerProcess) -> str:
    with open(os.path.join(srv.data_dir, "pki", "admin.token")) as f:
        return f.read().strip()


async def _fill(admin: aiohttp.ClientSession, base: str, n: int) -> None:
    path = base + "/api/v1/namespaces/default/configmaps"
    todo = list(range(n))

    async def worker() -> None:
        while todo:
            i = todo.pop()
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"flood-{i}"},
                    "data": {"payload": "x" * 1500}}
            while True:
                async with admin.post(path, data=orjson.dumps(body)) as r:
                    await r.read()
                    if r.status == 429:  # the filler is throttled too: wait as told
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")) / 10)
                        continue
                    assert r.status in (201, 409), r.status
                    break

    await asyncio.gather(*(worker() for _ in range(2)))


async def _flood_and_measure(srv: ServerProcess) -> dict:
    base = srv.url
    async with _session(srv, _admin_token(srv)) as admin, _session(srv, NODE_TOKEN) as node:
        await _fill(admin, base, 600)
        lease_path = base + "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "flow-node"},
                 "spec": {"holderIdentity": "flow-node", "leaseDurationSeconds": 40}}
        async with node.post(lease_path, data=orjson.dumps(lease)) as r:
            assert r.status == 201, await r.text()

        flood_results: list[tuple[int, str | None, bytes]] = []
        stop = asyncio.Event()

        async def greedy() -> None:
            while not stop.is_set():
                async with admin.get(base + "/api/v1/configmaps", headers={
                        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}) as r:
                    body = await r.read()
                    flood_results.append((r.status, r.headers.get("Retry-After"), body if r.status != 200 else b""))

        flooders = [asyncio.create_task(greedy()) for _ in range(24)]
        await asyncio.sleep(0.5)
        probes, renewals = [], []
        for i in range(15):
            async with node.get(base + "/readyz") as r:
                probes.append((r.status, await r.text()))
            async with node.get(lease_path + "/flow-node") as r:
                current = await r.json()
            current["spec"]["renewTime"] = f"2026-12-06T00:00:{i:02d}.000000Z"
            async with node.put(lease_path + "/flow-node", data=orjson.dumps(current)) as r:
                renewals.append((r.status, (await r.read())[:200]))
        stop.set()
        await asyncio.gather(*flooders)
        return {"flood": flood_results, "probes": probes, "renewals": renewals}


@pytest.fixture(scope="module")
def flood(limited):
    return asyncio.run(_flood_and_measure(limited))


def test_greedy_flood_gets_429_with_retry_after(flood):
    codes = [c for c, _, _ in flood["flood"]]
    assert 200 in codes, "the flood is served, within its share"
    rejected = [(ra, body) for c, ra, body in flood["flood"] if c == 429]
    assert rejected, f"no 429 among {len(codes)} flood requests"
    retry_after, body = rejected[0]
    assert retry_after is not None and int(retry_after) >= 1
    status = orjson.loads(body)
    assert status["kind"] == "Status" and status["reason"] == "TooManyRequests" and status["code"] == 429
    assert set(codes) <= {200, 429}


def test_probes_are_served_during_the_flood(flood):
    assert flood["probes"] and all(p == (200, "ok") for p in flood["probes"]), flood["probes"]


def test_node_lease_renewals_are_served_during_the_flood(flood):
    assert flood["renewals"] and all(s == 200 for s, _ in flood["renewals"]), flood["renewals"]


def test_server_healthy_after_the_flood(limited, flood):
    r = limited.kubectl("get", "configmap", "flood-1", "-o", "jsonpath={.metadata.name}")
    assert r.ok and r.stdout == "flood-1", r.stderr


def test_kubectl_gets_through_a_busy_server(limited, flood):
    # client-go retries 429 after Retry-After, so users of a throttled server see answers, not errors.
    r = limited.kubectl("get", "configmaps", "-A", "--chunk-size=100", "-o", "name")
    assert r.ok, r.stderr
    assert len(r.stdout.split()) >= 600


def test_idle_tls_connection_is_closed_after_the_header_timeout(limited):
    ctx = ssl.create_default_context(cafile=os.path.join(limited.data_dir, "pki", "ca.crt"))
    ctx.check_hostname = False
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port)) as raw, ctx.wrap_socket(raw) as tls:
        tls.settimeout(HEADER_TIMEOUT + 20)
        assert tls.recv(100) == b""  # closed by the server, without a response
    assert time.monotonic() - started < HEADER_TIMEOUT + 15


def test_connection_that_never_handshakes_is_closed(limited):
    with socket.create_connection(("127.0.0.1", limited.port)) as raw:
        raw.settimeout(HEADER_TIMEOUT + 20)
        try:
            assert raw.recv(100) == b""
        except ConnectionResetError:
            pass


def test_slow_partial_headers_do_not_keep_a_connection(limited):
    ctx = ssl.create_default_context(cafile=os.path.join(limited.data_dir, "pki", "ca.crt"))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", limited.port)) as raw, ctx.wrap_socket(raw) as tls:
        tls.settimeout(HEADER_TIMEOUT + 20)
        tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
        assert tls.recv(100) == b""


def test_kept_alive_connection_is_closed_when_idle(limited):
    ctx = ssl.create_default_context(cafile=os.path.join(limited.data_dir, "pki", "ca.crt"))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", limited.port)) as raw, ctx.wrap_socket(raw) as tls:
        tls.settimeout(IDLE_TIMEOUT + 20)
        tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = tls.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        # Within the idle time the connection still serves.
        time.sleep(IDLE_TIMEOUT / 3)
        tls.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert tls.recv(100) == b""
        assert time.monotonic() - started >= IDLE_TIMEOUT - 1


def test_watch_outlives_the_header_and_idle_timeouts(limited):
    async def run() -> list[dict]:
        async with _session(limited, _admin_token(limited)) as s:
            events = []
            url = limited.url + "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&timeoutSeconds=8"
            async with s.get(url) as r:
                assert r.status == 200
                await asyncio.sleep(max(HEADER_TIMEOUT, IDLE_TIMEOUT) + 1.5)
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late-watch-event"}}
                async with s.post(limited.url + "/api/v1/namespaces/default/configmaps",
                                  data=orjson.dumps(body)) as w:
                    assert w.status in (201, 429)
                    if w.status == 429:
                        await asyncio.sleep(1)
                        async with s.post(limited.url + "/api/v1/namespaces/default/configmaps",
                                          data=orjson.dumps(body)) as w2:
                            assert w2.status == 201
                async for line in r.content:
                    ev = orjson.loads(line)
                    events.append(ev)
                    if ev["object"]["metadata"]["name"] == "late-watch-event":
                        break
            return events

    events = asyncio.run(run())
    assert events[-1]["type"] == "ADDED" and events[-1]["object"]["metadata"]["name"] == "late-watch-event"


def test_large_lists_are_whole_documents(limited, flood):
    """Lists longer than one chunk are streamed; clients still get one well-formed document."""
    async def run() -> tuple[dict, dict, dict]:
        async with _session(limited, _admin_token(limited)) as s:
            async def get(path: str, accept: str = "application/json") -> dict:
                while True:
                    async with s.get(limited.url + path, headers={"Accept": accept}) as r:
                        if r.status == 429:
                            await asyncio.sleep(0.2)
                            continue
                        assert r.status == 200
                        return orjson.loads(await r.read())
            plain = await get("/api/v1/namespaces/default/configmaps")
            table = await get("/api/v1/configmaps", "application/json;as=Table;v=v1;g=meta.k8s.io")
            selected = await get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault")
            return plain, table, selected

    plain, table, selected = asyncio.run(run())
    names = [i["metadata"]["name"] for i in plain["items"]]
    assert len(names) >= 600 and names == sorted(names)
    assert plain["kind"] == "ConfigMapList" and plain["metadata"]["resourceVersion"]
    assert table["kind"] == "Table" and len(table["rows"]) >= 600
    assert [c["name"] for c in table["columnDefinitions"]][:2] == ["Name", "Data"]
    assert [i["metadata"]["name"] for i in selected["items"]] == names
    r = limited.kubectl("get", "configmaps", "-o", "json")
    assert r.ok and len(orjson.loads(r.stdout)["items"]) == len(names)
    # The Table kubectl prints, in pages of 500 and whole.
    for chunk in ("500", "0"):
        r = limited.kubectl("get", "configmaps", "-A", f"--chunk-size={chunk}")
        assert r.ok, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "DATA"]
        assert sum(1 for line in lines if line.startswith("default ")) == len(names)


def test_priority_levels_dump_shows_the_refusals(limited, flood):
    token = _admin_token(limited)
    ctx = ssl.create_default_context(cafile=os.path.join(limited.data_dir, "pki", "ca.crt"))
    import urllib.request

    req = urllib.request.Request(limited.url + "/debug/api_priority_and_fairness/dump_priority_levels",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        text = r.read().decode()
    rows = {tuple(line.split(", ")[:2]): line.split(", ") for line in text.splitlines()[1:]}
    assert int(rows[("global-default", "readonly")][6]) > 0, text
    assert int(rows[("node-high", "mutating")][6]) == 0, text
