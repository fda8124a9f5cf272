"""The audit log end to end: a real `kyb server` started with a policy file, a log path and
a webhook, driven by real kubectl as a certificate user, an impersonated user and the
admin; and the default policy of the session's server, which never writes a Secret."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from kybernetes.apiserver import pki
from kybernetes.testing.cluster import ServerProcess, free_port

NS = "audit-e2e"
USER, GROUP = "audit-alice", "audit-team"

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  verbs: ["get", "list", "watch"]
- level: RequestResponse
  namespaces: ["audit-e2e"]
  resources: [{group: "", resources: ["configmaps"]}]
- level: Metadata
  omitManagedFields: true
"""


class _Sink:
    """A webhook receiver (aiohttp, on its own loop in a thread) keeping the EventLists it gets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lists: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def receive(request: web.Request) -> web.Response:
            self.lists.append(await request.json())
            return web.Response(status=200)

        # Batches with RequestResponse bodies run to megabytes (aiohttp's default limit is 1 MiB).
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/audit", receive)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def events(self) -> list[dict]:
        return [e for lst in list(self.lists) for e in lst["items"]]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def sink():
    s = _Sink()
    yield s
    s.close()


@pytest.fixture(scope="module")
def audited(tmp_path_factory, sink):
    d = tmp_path_factory.mktemp("audit")
    (d / "policy.yaml").write_text(POLICY)
    webhook = {"apiVersion": "v1", "kind": "Config", "current-context": "sink",
               "clusters": [{"name": "sink", "cluster": {"server": f"http://127.0.0.1:{sink.port}/audit"}}],
               "contexts": [{"name": "sink", "context": {"cluster": "sink", "user": ""}}]}
    (d / "webhook.yaml").write_text(yaml.safe_dump(webhook))
    log = d / "logs" / "audit.log"
    srv = ServerProcess(extra_args=[
        "--disable-controllers", "--disable-scheduler",
        "--audit-policy-file", str(d / "policy.yaml"), "--audit-log-path", str(log),
        "--audit-log-maxsize", "1", "--audit-log-maxbackup", "2",
        "--audit-webhook-config-file", str(d / "webhook.yaml"), "--audit-webhook-batch-max-wait", "500ms"])
    srv.start()
    srv.audit_log = log  # type: ignore[attr-defined]
    ok = srv.kubectl("create", "namespace", NS)
    assert ok.ok, ok.stderr
    role = srv.kubectl("create", "role", "cm-writer", "-n", NS, "--verb=create,delete,get",
                       "--resource=configmaps")
    assert role.ok, role.stderr
    bind = srv.kubectl("create", "rolebinding", "cm-writer", "-n", NS, "--role=cm-writer", f"--group={GROUP}")
    assert bind.ok, bind.stderr
    paths = pki.pki_paths(srv.data_dir)
    cert, key = pki.issue_client_cert(paths, USER, [GROUP])
    kc = d / "alice.kc"
    kc.write_text(yaml.safe_dump(pki.kubeconfig_dict(pki.read_ca_pem(paths), srv.url, client_cert_pem=cert,
                                                     client_key_pem=key)))
    srv.alice = str(kc)  # type: ignore[attr-defined]
    yield srv
    srv.cleanup()


def _events(path: Path, want, timeout: float = 15.0) -> list[dict]:
    """The log's events (this file and its backups) once `want(events)` holds."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = []
        for p in sorted(path.parent.glob("audit*.log")):
            found += [json.loads(line) for line in _whole_lines(p)]
        if want(found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"the audit log never had what was expected; it has {len(found)} events: "
                         + json.dumps(found[-5:])[:3000])


def _whole_lines(p: Path) -> list[str]:
    """The file's complete lines (the writer may be in the middle of the next one)."""
    text = p.read_text()
    return text[:text.rfind("\n") + 1].splitlines()


def _about(events: list[dict], verb: str, name: str, resource: str = "configmaps") -> list[dict]:
    return [e for e in events if e["verb"] == verb and e.get("objectRef", {}).get("name") == name
            and e["objectRef"].get("resource") == resource]


def test_a_users_create_and_delete_are_recorded_with_that_user(audited):
    as_alice = ("--kubeconfig", audited.alice, "-n", NS)
    r = audited.kubectl(*as_alice, "create", "configmap", "alice-cm", "--from-literal=k=v1")
    assert r.ok, r.stderr
    r = audited.kubectl(*as_alice, "delete", "configmap", "alice-cm")
    assert r.ok, r.stderr
    events = _events(audited.audit_log, lambda ev: _about(ev, "create", "alice-cm") and _about(ev, "delete",
                                                                                               "alice-cm"))
    (create,), (delete,) = _about(events, "create", "alice-cm"), _about(events, "delete", "alice-cm")
    for ev, code in ((create, 201), (delete, 200)):
        assert ev["kind"] == "Event" and ev["apiVersion"] == "audit.k8s.io/v1"
        assert ev["stage"] == "ResponseComplete"  # RequestReceived omitted by the policy
        assert ev["level"] == "RequestResponse"
        assert ev["user"]["username"] == USER and GROUP in ev["user"]["groups"]
        assert "impersonatedUser" not in ev
        assert ev["objectRef"]["resource"] == "configmaps" and ev["objectRef"]["namespace"] == NS
        assert ev["objectRef"]["apiVersion"] == "v1"
        assert ev["responseStatus"]["code"] == code
        assert ev["annotations"]["authorization.k8s.io/decision"] == "allow"
        assert ev["annotations"]["authorization.k8s.io/reason"] == (
            f'RBAC: allowed by RoleBinding "cm-writer/{NS}" of Role "cm-writer" to Group "{GROUP}"')
        assert ev["userAgent"].startswith("kubectl/") and ev["sourceIPs"] == ["127.0.0.1"]
        assert ev["requestReceivedTimestamp"] <= ev["stageTimestamp"]
    # RequestResponse: what was sent and what was answered.
    assert create["requestObject"]["data"] == {"k": "v1"}
    assert create["responseObject"]["metadata"]["name"] == "alice-cm"
    assert create["objectRef"]["name"] == "alice-cm"
    assert delete["requestURI"] == f"/api/v1/namespaces/{NS}/configmaps/alice-cm"
    # Reads are at level None in this policy.
    assert not [e for e in events if e["verb"] in ("get", "list", "watch")]


def test_a_refused_request_is_recorded_as_forbidden(audited):
    r = audited.kubectl("--kubeconfig", audited.alice, "-n", NS, "create", "secret", "generic", "nope",
                        "--from-literal=a=b")
    assert not r.ok and "forbidden" in r.stderr.lower()
    events = _events(audited.audit_log, lambda ev: [
        e for e in ev if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "secrets"])
    (ev,) = [e for e in events if e["verb"] == "create" and e["objectRef"].get("resource") == "secrets"]
    assert ev["user"]["username"] == USER and ev["level"] == "Metadata"
    assert ev["responseStatus"]["code"] == 403 and ev["responseStatus"]["reason"] == "Forbidden"
    assert ev["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_impersonation_records_both_users(audited):
    grant = audited.kubectl("create", "rolebinding", "bob-writer", "-n", NS, "--role=cm-writer", "--user=audit-bob")
    assert grant.ok, grant.stderr
    r = audited.kubectl("-n", NS, "create", "configmap", "bob-cm", "--as=audit-bob")
    assert r.ok, r.stderr
    events = _events(audited.audit_log, lambda ev: _about(ev, "create", "bob-cm"))
    (ev,) = _about(events, "create", "bob-cm")
    assert ev["user"]["username"] == "kybernetes-admin" and "system:masters" in ev["user"]["groups"]
    assert ev["impersonatedUser"]["username"] == "audit-bob"
    assert ev["responseStatus"]["code"] == 201


def test_the_audit_id_header_names_the_event(audited):
    ctx = ssl.create_default_context(cafile=pki.pki_paths(audited.data_dir).ca_cert)
    ctx.check_hostname = False
    paths = pki.pki_paths(audited.data_dir)
    cert, key = pki.issue_client_cert(paths, USER, [GROUP])
    d = Path(audited.data_dir) / "alice-pem"
    d.mkdir(exist_ok=True)
    (d / "c.pem").write_bytes(cert)
    (d / "k.pem").write_bytes(key)
    ctx.load_cert_chain(str(d / "c.pem"), str(d / "k.pem"))
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-id"}}).encode()
    req = urllib.request.Request(f"{audited.url}/api/v1/namespaces/{NS}/configmaps", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        audit_id = resp.headers["Audit-Id"]
    assert audit_id
    events = _events(audited.audit_log, lambda ev: [e for e in ev if e["auditID"] == audit_id])
    (ev,) = [e for e in events if e["auditID"] == audit_id]
    assert ev["verb"] == "create" and ev["objectRef"]["name"] == "by-id"


def test_the_log_rotates_by_size(audited, tmp_path):
    # RequestResponse on ConfigMaps here: each 300 KB ConfigMap puts ~600 KB in the log.
    data = tmp_path / "blob.txt"
    data.write_text("x" * 300_000)
    for i in range(4):
        r = audited.kubectl("-n", NS, "create", "configmap", f"big-{i}", f"--from-file=blob={data}")
        assert r.ok, r.stderr
    log = audited.audit_log

    def rotated() -> list[Path]:
        return [p for p in log.parent.glob("audit-*.log")]

    # Every create answered is in the log once its event is (the last one's, in the live file).
    _events(log, lambda ev: len([e for i in range(4) for e in _about(ev, "create", f"big-{i}")]) >= 2)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (len(rotated()) < 2 or not log.read_text().endswith("\n")):
        time.sleep(0.2)
    backups = rotated()
    assert len(backups) == 2  # --audit-log-maxbackup 2: older ones removed
    for p in [log, *backups]:
        assert p.stat().st_size <= 1024 * 1024 + 700_000  # one event may overshoot, never a second
        assert os.stat(p).st_mode & 0o777 == 0o600
        for line in p.read_text().splitlines():
            json.loads(line)  # whole events only, never split across files


def test_the_webhook_receives_event_lists(audited, sink):
    r = audited.kubectl("-n", NS, "create", "configmap", "for-webhook")
    assert r.ok, r.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _about(sink.events(), "create", "for-webhook"):
        time.sleep(0.2)
    found = _about(sink.events(), "create", "for-webhook")
    assert len(found) == 1, audited.log_tail(3000)
    (ev,) = found
    assert ev["user"]["username"] == "kybernetes-admin" and ev["stage"] == "ResponseComplete"
    assert all(lst["kind"] == "EventList" and lst["apiVersion"] == "audit.k8s.io/v1" for lst in sink.lists)
    # The same events as the file, by ID.
    assert _about(_events(audited.audit_log, lambda e: _about(e, "create", "for-webhook")),
                  "create", "for-webhook")[0]["auditID"] == ev["auditID"]


def test_the_default_policy_records_writes_but_never_a_secret(server, kubectl):
    """`kyb server` audits by default (the session's server has no audit flags)."""
    value = "s3cr3t-audit-value-7f1d"
    kubectl.ok("create", "namespace", "audit-default")
    kubectl.ok("-n", "audit-default", "create", "secret", "generic", "hush", f"--from-literal=password={value}")
    kubectl.ok("-n", "audit-default", "get", "secret", "hush", "-o", "yaml")
    kubectl.ok("-n", "audit-default", "patch", "secret", "hush", "-p",
               json.dumps({"stringData": {"password": value + "-2"}}))
    log = Path(server.data_dir) / "audit.log"
    assert os.stat(log).st_mode & 0o777 == 0o600
    events = _events(log, lambda ev: _about(ev, "patch", "hush", "secrets"))
    create = _about(events, "create", "hush", "secrets")
    assert len(create) == 1 and create[0]["level"] == "Metadata"
    assert create[0]["responseStatus"]["code"] == 201
    assert not _about(events, "get", "hush", "secrets")  # reads are not recorded
    text = "".join(p.read_text() for p in log.parent.glob("audit*.log"))
    for secret in (value, base64.b64encode(value.encode()).decode(), value + "-2"):
        assert secret not in text
    assert "requestObject" not in text and "responseObject" not in text
    kubectl("delete", "namespace", "audit-default", "--wait=false")
