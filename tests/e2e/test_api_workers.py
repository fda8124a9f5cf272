"""`kyb server --api-workers 2`: a worker process shares the port with the primary; whichever
process a connection lands on, clients read their own writes, watches see every change in
order, a write through a worker is stored once, a worker's death loses nothing, and the
workers' private forwarding socket is the only place front-proxy headers are believed."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import time

import pytest

from kybernetes.testing.cluster import ServerProcess, process_argvs

NS = "default"
ALICE_TOKEN = "workers-test-alice-token"


@pytest.fixture(scope="module")
def srv():
    server = ServerProcess(extra_args=["--api-workers", "2", "--disable-controllers", "--disable-scheduler"])
    os.makedirs(os.path.join(server.data_dir, "pki"), mode=0o700)
    with open(os.path.join(server.data_dir, "pki", "tokens.csv"), "w") as f:
        f.write(f'{ALICE_TOKEN},alice,uid-alice,"dev"\n')
    server.start()
    _wait_for_workers(server, 1)
    yield server
    server.cleanup()


def _token(srv: ServerProcess) -> str:
    with open(os.path.join(srv.data_dir, "pki", "admin.token")) as f:
        return f.read().strip()


def worker_pids(srv: ServerProcess) -> list[int]:
    assert srv.proc is not None
    out = []
    for pid, argv in process_argvs():
        if b"api-worker" in argv and _ppid(pid) == srv.proc.pid:
            out.append(pid)
    return out


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _wait_for_workers(srv: ServerProcess, n: int, exclude: tuple[int, ...] = ()) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = [p for p in worker_pids(srv) if p not in exclude]
        if len(pids) >= n and all(_listening(p, srv.port) for p in pids):
            return pids
        time.sleep(0.2)
    raise AssertionError(f"no API worker serving: {srv.log_tail()}")


def _wait_exited(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not exit")


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def _tcp_entries() -> list[list[str]]:
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows += [line.split() for line in f.readlines()[1:]]
        except OSError:
            pass
    return rows


def _listening(pid: int, port: int) -> bool:
    inodes = _socket_inodes(pid)
    return any(r[1].endswith(f":{port:04X}") and r[3] == "0A" and r[9] in inodes for r in _tcp_entries())


def _listener_inodes(pid: int, port: int) -> set[str]:
    inodes = _socket_inodes(pid)
    return {r[9] for r in _tcp_entries() if r[1].endswith(f":{port:04X}") and r[3] == "0A" and r[9] in inodes}


def _wait_closed(inodes: set[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not inodes & {r[9] for r in _tcp_entries()}:
            return
        time.sleep(0.01)
    raise AssertionError(f"listening sockets {inodes} were never closed")


def serving_pid(srv: ServerProcess, client_port: int) -> int:
    """Which server process holds the other end of our connection from `client_port`."""
    assert srv.proc is not None
    want = (f":{srv.port:04X}", f":{client_port:04X}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        inode = next((r[9] for r in _tcp_entries() if r[1].endswith(want[0]) and r[2].endswith(want[1])), None)
        if inode is not None:
            for pid in [srv.proc.pid, *worker_pids(srv)]:
                if inode in _socket_inodes(pid):
                    return pid
        time.sleep(0.02)
    raise AssertionError("no server process holds the connection")


class Conn:
    """One fresh HTTPS connection, and the server process that accepted it."""

    def __init__(self, srv: ServerProcess, token: str | None = None) -> None:
        ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
        self.http = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
        self.http.connect()
        self.token = _token(srv) if token is None else token
        # One request first: the process has accepted the connection once it answers.
        self.request("GET", "/version")
        assert self.http.sock is not None
        self.pid = serving_pid(srv, self.http.sock.getsockname()[1])

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict]:
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        self.http.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = self.http.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data.startswith(b"{") else {"raw": data.decode()})

    def close(self) -> None:
        self.http.close()


def conn_on(srv: ServerProcess, worker: bool, token: str | None = None) -> Conn:
    """A connection the kernel gave to a worker (or to the primary)."""
    assert srv.proc is not None
    for _ in range(200):
        c = Conn(srv, token)
        if (c.pid != srv.proc.pid) == worker:
            return c
        c.close()
    raise AssertionError("the kernel never picked the wanted process")


def cm(name: str, value: str, **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"v": value}}


def test_reads_see_writes_made_just_before_on_other_connections(srv):
    assert srv.proc is not None
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    served_by = {"write": set(), "read": set()}
    for i in range(40):
        w = Conn(srv)
        status, made = w.request("POST", cms, cm(f"ryw-{i}", "a"))
        assert status == 201, made
        served_by["write"].add(w.pid != srv.proc.pid)
        w.close()
        r = Conn(srv)
        status, got = r.request("GET", f"{cms}/ryw-{i}")
        assert status == 200, got
        assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
        served_by["read"].add(r.pid != srv.proc.pid)
        r.close()

        u = Conn(srv)
        got["data"]["v"] = "b"
        status, updated = u.request("PUT", f"{cms}/ryw-{i}", got)
        assert status == 200, updated
        u.close()
        r = Conn(srv)
        status, after = r.request("GET", f"{cms}/ryw-{i}")
        assert status == 200 and after["data"]["v"] == "b", after
        assert after["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
        # A list without resourceVersion is as fresh as the GET.
        status, listed = r.request("GET", f"{cms}?labelSelector=&fieldSelector=metadata.name%3Dryw-{i}")
        assert [o["data"]["v"] for o in listed["items"]] == ["b"]
        r.close()
    # Both kinds of process did both jobs (40 fresh connections each way: never all on one).
    assert served_by["write"] == {True, False} and served_by["read"] == {True, False}


def test_a_worker_reads_a_write_the_primary_just_acknowledged(srv):
    # Kept-alive connections, so the read follows the write's answer within a fraction of
    # a millisecond: the worker must wait until it has followed the log that far.
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    writer = conn_on(srv, worker=False)
    reader = conn_on(srv, worker=True)
    for i in range(150):
        status, made = writer.request("POST", cms, cm(f"tight-{i}", "a"))
        assert status == 201, made
        status, got = reader.request("GET", f"{cms}/tight-{i}")
        assert status == 200, f"create {i} not seen by the worker: {got}"
        assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
        status, gone = writer.request("DELETE", f"{cms}/tight-{i}")
        assert status == 200
        status, listed = reader.request("GET", cms + f"?fieldSelector=metadata.name%3Dtight-{i}")
        assert listed["items"] == [], f"delete {i} not seen by the worker"
    writer.close()
    reader.close()


def test_watch_on_a_worker_sees_every_change_in_order(srv):
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    setup = Conn(srv)
    status, listed = setup.request("GET", cms + "?labelSelector=watched%3Dyes")
    start_rv = listed["metadata"]["resourceVersion"]
    watcher = conn_on(srv, worker=True)
    watcher.http.request("GET", f"{cms}?watch=1&labelSelector=watched%3Dyes&resourceVersion={start_rv}"
                         "&timeoutSeconds=60", headers={"Authorization": f"Bearer {watcher.token}"})
    stream = watcher.http.getresponse()
    assert stream.status == 200
    expected = []
    for i in range(15):
        c = Conn(srv)  # writes land on either process
        status, made = c.request("POST", cms, cm(f"w-{i}", "1", labels={"watched": "yes"}))
        assert status == 201
        expected.append(("ADDED", f"w-{i}", made["metadata"]["resourceVersion"]))
        made["data"]["v"] = "2"
        status, upd = c.request("PUT", f"{cms}/w-{i}", made)
        assert status == 200
        expected.append(("MODIFIED", f"w-{i}", upd["metadata"]["resourceVersion"]))
        if i % 3 == 0:
            status, gone = c.request("DELETE", f"{cms}/w-{i}")
            assert status == 200
            expected.append(("DELETED", f"w-{i}", None))
        c.close()
    seen = []
    while len(seen) < len(expected):
        line = stream.readline()
        assert line, f"watch ended after {len(seen)} of {len(expected)} events"
        ev = json.loads(line)
        seen.append((ev["type"], ev["object"]["metadata"]["name"], ev["object"]["metadata"]["resourceVersion"]))
    watcher.close()
    assert [(t, n) for t, n, _ in seen] == [(t, n) for t, n, _ in expected]
    assert [rv for _, _, rv in seen if rv is not None][:2] == [rv for _, _, rv in expected if rv][:2]
    revs = [int(rv) for _, _, rv in seen]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


def test_a_write_sent_to_a_worker_is_stored_once(srv):
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    c = conn_on(srv, worker=True)
    status, made = c.request("POST", cms, cm("", "once", generateName="once-", labels={"once": "yes"}))
    assert status == 201, made
    status, again = c.request("POST", cms, cm(made["metadata"]["name"], "twice"))
    assert status == 409 and again["reason"] == "AlreadyExists"
    c.close()
    r = Conn(srv)
    status, listed = r.request("GET", cms + "?labelSelector=once%3Dyes")
    r.close()
    assert [o["metadata"]["name"] for o in listed["items"]] == [made["metadata"]["name"]]
    assert listed["items"][0]["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


def test_bad_writes_through_a_worker_get_the_primarys_status(srv):
    c = conn_on(srv, worker=True)
    status, body = c.request("POST", f"/api/v1/namespaces/{NS}/configmaps", cm("Bad_Name", "x"))
    assert status == 422 and body["kind"] == "Status" and body["reason"] == "Invalid"
    status, body = c.request("GET", f"/api/v1/namespaces/{NS}/configmaps/Bad_Name")
    assert status == 404
    c.close()


def test_a_body_too_large_gets_the_same_status_from_a_worker(srv):
    c = conn_on(srv, worker=True)
    big = cm("big", "x" * (4 * 1024 * 1024))
    try:
        status, body = c.request("POST", f"/api/v1/namespaces/{NS}/configmaps", big)
    except (ConnectionResetError, BrokenPipeError):
        status, body = 413, {"reason": "RequestEntityTooLarge"}  # answered before the body was all sent
    assert status == 413 and body["reason"] == "RequestEntityTooLarge"
    c.close()
    r = Conn(srv)
    assert r.request("GET", f"/api/v1/namespaces/{NS}/configmaps/big")[0] == 404
    r.close()


def test_front_proxy_headers_from_the_network_are_not_believed(srv):
    sock = os.path.join(srv.data_dir, "api-forward.sock")
    assert os.stat(sock).st_mode & 0o777 == 0o600
    forged = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
    for worker in (True, False):
        anon = conn_on(srv, worker=worker, token="")
        status, body = anon.request("POST", f"/api/v1/namespaces/{NS}/configmaps", cm(f"forged-{worker}", "x"),
                                    headers=forged)
        assert status == 403, body
        assert "system:anonymous" in body["message"]
        anon.close()
        alice = conn_on(srv, worker=worker, token=ALICE_TOKEN)
        status, review = alice.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                       {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                                       headers=forged)
        assert status == 201
        assert review["status"]["userInfo"]["username"] == "alice"
        assert "system:masters" not in review["status"]["userInfo"]["groups"]
        alice.close()
    admin = Conn(srv)
    status, _ = admin.request("GET", f"/api/v1/namespaces/{NS}/configmaps/forged-True")
    assert status == 404
    admin.close()


def test_killing_a_worker_loses_no_acknowledged_write(srv):
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    made = {}
    for i in range(10):
        c = conn_on(srv, worker=(i % 2 == 0))
        status, obj = c.request("POST", cms, cm(f"kill-{i}", str(i)))
        assert status == 201
        made[obj["metadata"]["name"]] = obj["metadata"]["resourceVersion"]
        c.close()
    victims = worker_pids(srv)
    assert victims
    listeners = set().union(*(_listener_inodes(pid, srv.port) for pid in victims))
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        _wait_exited(pid)
    # The kernel may close a dead process's listening socket a moment after the process
    # is gone (uvloop's io_uring is torn down by a kernel worker); connections it takes
    # until then are reset, so wait until it has left the port.
    _wait_closed(listeners)
    # Once the worker is gone (connections still in its accept queue when it died were
    # reset: SO_REUSEPORT gives each listener its own queue) the server keeps answering
    # on every new connection, and every acknowledged write is there.
    for name, rv in made.items():
        c = Conn(srv)
        status, got = c.request("GET", f"{cms}/{name}")
        assert status == 200 and got["metadata"]["resourceVersion"] == rv
        c.close()
    # The primary starts a new worker, which serves the same objects.
    _wait_for_workers(srv, 1, exclude=tuple(victims))
    c = conn_on(srv, worker=True)
    status, listed = c.request("GET", cms)
    names = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed["items"]}
    assert all(names.get(n) == rv for n, rv in made.items())
    # A watch resumed on the new worker from before it started replays, not 410 Gone.
    first = min(made.values(), key=int)
    c.http.request("GET", f"{cms}?watch=1&resourceVersion={first}&timeoutSeconds=5",
                   headers={"Authorization": f"Bearer {c.token}"})
    stream = c.http.getresponse()
    replayed = []
    while len(replayed) < len(made) - 1:
        ev = json.loads(stream.readline())
        assert ev["type"] != "ERROR", ev
        if ev["object"]["metadata"]["name"].startswith("kill-"):
            replayed.append(ev["object"]["metadata"]["name"])
    assert replayed == sorted(made, key=lambda n: int(made[n]))[1:]
    c.close()


def test_a_worker_answers_410_for_revisions_the_primary_compacted(tmp_path):
    compacting = ServerProcess(data_dir=str(tmp_path), extra_args=[
        "--api-workers", "2", "--disable-controllers", "--disable-scheduler",
        "--compact-interval", "1", "--compact-retention", "5"])
    compacting.start()
    try:
        _wait_for_workers(compacting, 1)
        cms = f"/api/v1/namespaces/{NS}/configmaps"
        c = conn_on(compacting, worker=True)
        status, early = c.request("POST", cms, cm("compact-me", "0"))
        assert status == 201
        early_rv = early["metadata"]["resourceVersion"]
        for i in range(30):
            status, _ = c.request("PATCH", f"{cms}/compact-me", {"data": {"v": str(i)}},
                                  headers={"Content-Type": "application/merge-patch+json"})
            assert status == 200
        deadline = time.monotonic() + 20
        while True:
            status, body = c.request("GET", f"{cms}?resourceVersion={early_rv}&resourceVersionMatch=Exact")
            if status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 410, body
        c.http.request("GET", f"{cms}?watch=1&resourceVersion={early_rv}",
                       headers={"Authorization": f"Bearer {c.token}"})
        stream = c.http.getresponse()
        first = json.loads(stream.readline())
        assert first["type"] == "ERROR" and first["object"]["code"] == 410, first
        c.close()
    finally:
        compacting.stop()
