"""The audit shell (apiserver/audit.py): the hooks on a real aiohttp app, the rotated log
file, the log backend under a flood, and the webhook backend against a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import time

import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kybernetes.api.audit import PolicyError, parse_policy
from kybernetes.apiserver import audit as shell
from kybernetes.apiserver.auth import UserInfo
from kybernetes.apiserver.rest import REQUEST_BODY, read_body


class _Memory:
    name = "memory"
    dropped = 0

    def __init__(self) -> None:
        self.lines: list[dict] = []

    def emit(self, line: bytes) -> None:
        self.lines.append(orjson.loads(line))

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def _auditor(rules: list[dict], **top) -> tuple[shell.Auditor, _Memory]:
    mem = _Memory()
    policy = parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules, **top})
    return shell.Auditor(policy, [mem]), mem


async def _client(auditor: shell.Auditor) -> TestClient:
    """An app wired as app.py wires the auditor: observe around, begin after authentication."""
    user = UserInfo("alice", "u-1", ["devs", "system:authenticated"], {"scopes": ["a"]})

    async def inner(request: web.Request, handler) -> web.StreamResponse:
        ctx = auditor.begin(request, user)
        if ctx is not None:
            ctx.authz = ("allow", "because")
        return await handler(request)

    @web.middleware
    async def mw(request: web.Request, handler) -> web.StreamResponse:
        return await auditor.observe(request, inner(request, handler))

    async def create(request: web.Request) -> web.Response:
        # As rest.py's writes: the body read is kept for the audit log.
        data = request[REQUEST_BODY] = await read_body(request)
        # What admission adds to the event (rest.py shares the write's annotations).
        request[shell.AUDIT_ANNOTATIONS] = {"pod-security.kubernetes.io/enforce-policy": "privileged:latest"}
        body = orjson.loads(data)
        body["metadata"]["uid"] = "new-uid"
        body["metadata"]["managedFields"] = [{"manager": "x"}]
        return web.Response(body=orjson.dumps(body), status=201, content_type="application/json")

    async def missing(request: web.Request) -> web.Response:
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": 'configmaps "x" not found', "reason": "NotFound", "code": 404}
        return web.Response(body=orjson.dumps(status), status=404, content_type="application/json")

    async def watch(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"type":"ADDED"}\n')
        return resp

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[mw])
    app.router.add_post("/api/v1/namespaces/ns/configmaps", create)
    app.router.add_get("/api/v1/namespaces/ns/configmaps/x", missing)
    app.router.add_get("/api/v1/namespaces/ns/configmaps", watch)
    app.router.add_get("/healthz", healthz)
    app.on_response_prepare.append(auditor.on_prepare)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_request_response_events_through_the_hooks():
    auditor, mem = _auditor([{"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}],
                              "omitManagedFields": True}])
    client = await _client(auditor)
    try:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"k": "v"}}
        r = await client.post("/api/v1/namespaces/ns/configmaps?fieldManager=m", data=orjson.dumps(body),
                              headers={"Content-Type": "application/json", "User-Agent": "tester/1"})
        assert r.status == 201
        audit_id = r.headers["Audit-Id"]
        assert [e["stage"] for e in mem.lines] == ["RequestReceived", "ResponseComplete"]
        received, done = mem.lines
        assert received["auditID"] == done["auditID"] == audit_id
        assert "annotations" not in received and "responseStatus" not in received
        assert done["verb"] == "create" and done["requestURI"] == "/api/v1/namespaces/ns/configmaps?fieldManager=m"
        assert done["user"] == {"username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"],
                                "extra": {"scopes": ["a"]}}
        assert done["objectRef"] == {"resource": "configmaps", "namespace": "ns", "name": "c1", "apiVersion": "v1"}
        assert done["responseStatus"] == {"metadata": {}, "code": 201}
        assert done["requestObject"] == body
        assert done["responseObject"]["metadata"] == {"name": "c1", "uid": "new-uid"}  # managedFields omitted
        assert done["annotations"] == {"authorization.k8s.io/decision": "allow",
                                       "authorization.k8s.io/reason": "because",
                                       "pod-security.kubernetes.io/enforce-policy": "privileged:latest"}
        assert done["userAgent"] == "tester/1" and done["sourceIPs"] == ["127.0.0.1"]

        mem.lines.clear()
        r = await client.get("/api/v1/namespaces/ns/configmaps/x", headers={"Audit-ID": "from-proxy"})
        assert r.status == 404 and r.headers["Audit-Id"] == "from-proxy"
        done = mem.lines[-1]
        assert done["auditID"] == "from-proxy"
        assert done["responseStatus"] == {"metadata": {}, "status": "Failure", "message": 'configmaps "x" not found',
                                          "reason": "NotFound", "code": 404}
        assert "responseObject" not in done

        mem.lines.clear()
        r = await client.get("/api/v1/namespaces/ns/configmaps?watch=true")
        await r.read()
        assert [e["stage"] for e in mem.lines] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
        assert mem.lines[1]["verb"] == "watch" and mem.lines[1]["responseStatus"]["code"] == 200

        # Not audited by the policy: no event, and still an Audit-Id.
        mem.lines.clear()
        r = await client.get("/healthz")
        assert r.status == 200 and r.headers["Audit-Id"] and mem.lines == []
    finally:
        await client.close()


async def test_metadata_level_has_no_bodies_and_omitted_stages_are_left_out():
    auditor, mem = _auditor([{"level": "Metadata"}], omitStages=["RequestReceived"])
    client = await _client(auditor)
    try:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2"}, "data": {"k": "hush"}}
        r = await client.post("/api/v1/namespaces/ns/configmaps", data=orjson.dumps(body),
                              headers={"Content-Type": "application/json"})
        assert r.status == 201
        assert [e["stage"] for e in mem.lines] == ["ResponseComplete"]
        line = json.dumps(mem.lines[0])
        assert "hush" not in line and "requestObject" not in line and "responseObject" not in line
        assert mem.lines[0]["objectRef"]["name"] == "c2"
        assert list(mem.lines[0]["annotations"].items()) == [
            ("authorization.k8s.io/decision", "allow"), ("authorization.k8s.io/reason", "because"),
            ("pod-security.kubernetes.io/enforce-policy", "privileged:latest")]
    finally:
        await client.close()


def test_rotating_file_rotates_by_size_and_keeps_max_backups(tmp_path):
    path = str(tmp_path / "audit.log")
    f = shell.RotatingFile(path, max_bytes=100, max_backups=2)
    for i in range(9):
        f.write(b"%02d" % i + b"x" * 47 + b"\n")  # 50 bytes: two lines fill a file
        time.sleep(0.002)  # backups are named by the millisecond
    f.close()
    backups = f.backups()
    assert len(backups) == 2
    assert all(os.path.basename(b).startswith("audit-") and b.endswith(".log") for b in backups)
    assert os.stat(path).st_mode & 0o777 == 0o600
    # The live file holds the newest line; the newest backup the two before it.
    assert open(path, "rb").read().startswith(b"08")
    assert [ln[:2] for ln in open(backups[0], "rb").read().splitlines()] == [b"06", b"07"]


def test_rotating_file_drops_backups_past_max_age(tmp_path):
    path = str(tmp_path / "audit.log")
    old = tmp_path / "audit-2020-01-01T00-00-00.000.log"
    old.write_bytes(b"old\n")
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    unrelated = tmp_path / "audit-notes.log"
    unrelated.write_bytes(b"keep\n")
    f = shell.RotatingFile(path, max_bytes=10, max_age_days=1)
    f.write(b"0123456789\n")
    f.write(b"0123456789\n")
    f.close()
    assert not old.exists() and unrelated.exists()
    assert len(f.backups()) == 1


async def test_log_backend_keeps_order_and_drops_past_its_buffer(tmp_path):
    path = str(tmp_path / "audit.log")
    backend = shell.LogBackend(path, max_size_mb=0, buffer_size=1000)
    await backend.start()
    for i in range(5000):  # in one loop iteration: the thread cannot keep up with all of them
        backend.emit(b'{"n":%d}\n' % i)
    await backend.stop()
    numbers = [json.loads(ln)["n"] for ln in open(path)]
    assert numbers == sorted(numbers) and numbers[0] == 0
    assert len(numbers) + backend.dropped == 5000
    assert backend.dropped > 0


async def test_webhook_backend_posts_event_lists_in_batches():
    got: list[dict] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/audit", receive)
    server = TestServer(app)
    await server.start_server()
    try:
        backend = shell.WebhookBackend(shell.WebhookTarget(str(server.make_url("/audit"))), batch_max_size=3,
                                       batch_max_wait=0.2)
        await backend.start()
        for i in range(7):
            backend.emit(b'{"n":%d}\n' % i)
        for _ in range(100):
            if sum(len(b["items"]) for b in got) == 7:
                break
            await asyncio.sleep(0.05)
        await backend.stop()
        assert all(b["kind"] == "EventList" and b["apiVersion"] == "audit.k8s.io/v1" for b in got)
        assert [len(b["items"]) for b in got] == [3, 3, 1]
        assert [i["n"] for b in got for i in b["items"]] == list(range(7))
    finally:
        await server.close()


async def test_webhook_backend_drops_and_counts_when_the_server_is_down():
    backend = shell.WebhookBackend(shell.WebhookTarget("http://127.0.0.1:9/audit"), batch_max_size=10,
                                   batch_max_wait=0.05, buffer_size=5, initial_backoff=0.01, retries=1)
    await backend.start()
    for i in range(8):
        backend.emit(b'{"n":%d}' % i)  # 3 past the buffer: dropped at once, the request not held
    assert backend.dropped == 3
    for _ in range(100):
        if backend.dropped == 8:
            break
        await asyncio.sleep(0.05)
    await backend.stop()
    assert backend.dropped == 8 and backend.sent == 0


def test_webhook_target_from_a_kubeconfig(tmp_path):
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "audit",
           "clusters": [{"name": "other", "cluster": {"server": "https://wrong"}},
                        {"name": "sink", "cluster": {"server": "https://127.0.0.1:1/events",
                                                     "insecure-skip-tls-verify": True}}],
           "users": [{"name": "me", "user": {"token": "t0k"}}],
           "contexts": [{"name": "audit", "context": {"cluster": "sink", "user": "me"}}]}
    p = tmp_path / "webhook.yaml"
    p.write_text(yaml.safe_dump(cfg))
    target = shell.load_webhook_target(str(p))
    assert target.url == "https://127.0.0.1:1/events"
    assert target.headers == {"Authorization": "Bearer t0k"}
    assert target.ssl is not None
    p.write_text(yaml.safe_dump({"clusters": [{"name": "x", "cluster": {"server": "ftp://x"}}]}))
    with pytest.raises(PolicyError, match="http"):
        shell.load_webhook_target(str(p))


def test_policy_file_errors_name_the_file(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    with pytest.raises(PolicyError, match=r"policy.yaml: rules\[0\].level: Unsupported value"):
        shell.load_policy(str(p))
    with pytest.raises(PolicyError, match="cannot read"):
        shell.load_policy(str(tmp_path / "absent.yaml"))
    assert shell.load_policy(None).rules  # the default policy


def test_audit_ids_are_distinct_version_4_uuids():
    import uuid

    ids = {shell.new_audit_id() for _ in range(20000)}
    assert len(ids) == 20000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in list(ids)[:100])


async def test_unauthenticated_and_panicking_requests():
    auditor, mem = _auditor([{"level": "Metadata"}])

    @web.middleware
    async def mw(request: web.Request, handler) -> web.StreamResponse:
        async def inner() -> web.StreamResponse:
            user = None if "anonymous" in request.path else UserInfo("bob", groups=["system:authenticated"])
            auditor.begin(request, user)
            if user is None:
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
                return web.Response(body=orjson.dumps(status), status=401, content_type="application/json")
            # What app.py's middleware does with an unexpected exception: a 500, and the panic noted.
            request[shell.PANIC] = "KeyError: 'spec'"
            return web.Response(status=500, text="internal error")

        return await auditor.observe(request, inner())

    async def nothing(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application(middlewares=[mw])
    app.router.add_route("*", "/{tail:.*}", nothing)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        r = await client.get("/api/v1/namespaces/anonymous/pods")
        assert r.status == 401
        # No RequestReceived for a failed authentication (as upstream), and no user.
        (ev,) = mem.lines
        assert ev["stage"] == "ResponseComplete" and ev["user"] == {} and ev["verb"] == "list"
        assert ev["responseStatus"] == {"metadata": {}, "status": "Failure", "message": "Unauthorized",
                                        "reason": "Unauthorized", "code": 401}
        mem.lines.clear()
        r = await client.post("/api/v1/namespaces/ns/pods", data=b"{}")
        assert r.status == 500
        assert [e["stage"] for e in mem.lines] == ["RequestReceived", "Panic"]
        assert mem.lines[1]["responseStatus"] == {"metadata": {}, "status": "Failure",
                                                  "message": "APIServer panic'd: KeyError: 'spec'", "code": 500}
    finally:
        await client.close()
