"""The server's limits on memory and disk, seen from outside: a watcher that stops
reading is closed while others keep being served and RSS stays within budget; a full
disk makes writes fail clearly with nothing stored while reads, a restart and (once
space is freed) writes all work with nothing acknowledged lost; the data dir and
every file the server keeps in it are private to their owner."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from kybernetes.testing.cluster import ServerProcess, rss_mb

API_ONLY = ["--disable-controllers", "--disable-scheduler"]


def request(srv: ServerProcess, method: str, path: str, body: object = None,
            content_type: str = "application/json") -> tuple[int, dict]:
    token = open(os.path.join(srv.data_dir, "pki", "admin.token")).read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(srv.url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def configmap(name: str, value: str = "") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


# -- a stalled watcher -------------------------------------------------------------------------


def open_watch(srv: ServerProcess, path: str, rcvbuf: int | None = None) -> ssl.SSLSocket:
    """A raw HTTPS watch: sends the request and reads up to the end of the response headers."""
    token = open(os.path.join(srv.data_dir, "pki", "admin.token")).read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    raw = socket.socket()
    if rcvbuf is not None:
        # Before connecting, so the window the server sees is small from the start.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.connect(("127.0.0.1", srv.port))
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    # Connection: close, so the end of the watch's response is the end of the stream.
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                 "Connection: close\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed the watch before answering"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def server_side_open(server_port: int, client: socket.socket) -> bool:
    """Whether the server still has this client's connection ESTABLISHED (from
    /proc/net/tcp, so a client that reads nothing can tell the server closed it)."""
    client_port = client.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if (int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port
                    and state == "01"):
                return True
    return False


def read_until_end(sock: ssl.SSLSocket, timeout: float) -> tuple[bool, bytes]:
    """Read what the server sends; (True, data) if the stream ended (EOF or reset)."""
    # At full speed: through a small window, what the server's kernel still buffers
    # would take minutes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(timeout)
    data = bytearray()
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return True, bytes(data)
            data += chunk
    except TimeoutError:
        return False, bytes(data)
    except (ConnectionError, ssl.SSLError, OSError):
        return True, bytes(data)


def test_a_stalled_watcher_is_closed_and_memory_stays_bounded() -> None:
    srv = ServerProcess(extra_args=[*API_ONLY, "--api-workers", "1"])
    try:
        srv.start()
        assert srv.proc is not None
        assert request(srv, "POST", "/api/v1/namespaces", {"metadata": {"name": "stall"}})[0] == 201
        base = "/api/v1/namespaces/stall/configmaps"
        assert request(srv, "POST", base, configmap("big"))[0] == 201
        # Closed by the client after a while; it reads everything, as a healthy client does.
        healthy = open_watch(srv, base + "?watch=1&timeoutSeconds=600")
        stalled = open_watch(srv, base + "?watch=1", rcvbuf=4096)  # never read from here on
        rss_start = rss_mb(srv.proc.pid)
        value = "x" * (512 * 1024)
        healthy_data = bytearray()
        for i in range(160):  # 80 MB of events: far past one watcher's backlog budget
            status, body = request(srv, "PATCH", f"{base}/big", {"data": {"v": f"{i:04d}{value}"}},
                                   "application/merge-patch+json")
            assert status == 200, body
            healthy.settimeout(0.01)
            try:
                while chunk := healthy.recv(1 << 20):
                    healthy_data += chunk
            except (TimeoutError, ssl.SSLWantReadError):
                pass
        rss_peak = rss_mb(srv.proc.pid)
        deadline = time.monotonic() + 30
        while server_side_open(srv.port, stalled) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not server_side_open(srv.port, stalled), "the server kept the stalled watch open"
        # The healthy watch got every update, and is still open.
        healthy_ended, rest = read_until_end(healthy, timeout=3)
        assert not healthy_ended
        healthy_data += rest
        assert healthy_data.count(b'"type":"MODIFIED"') == 160
        # The server keeps serving: reads, writes and new watches.
        assert request(srv, "GET", f"{base}/big")[0] == 200
        assert request(srv, "POST", base, configmap("after"))[0] == 201
        again = open_watch(srv, base + "?watch=1&resourceVersion=0&timeoutSeconds=1")
        ended, data = read_until_end(again, timeout=15)
        assert ended and b'"name":"after"' in data
        # 80 MB went by; one watcher's budget (16 MB), the event window's (48 MB) and
        # the connection buffers bound what the server may have held.
        assert rss_peak - rss_start < 150, (rss_start, rss_peak)
        for s in (healthy, stalled, again):
            s.close()
    finally:
        srv.cleanup()


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tempfile.mkdtemp(prefix="kyb-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)
        os.rmdir(mnt)


def fill(path: str) -> None:
    """Write to `path` until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            block = b"\1" * size
            try:
                while f.write(block):
                    pass
            except OSError:
                pass


def test_full_disk_fails_writes_clearly_keeps_reads_and_loses_nothing(small_tmpfs: str) -> None:
    data_dir = os.path.join(small_tmpfs, "data")
    srv = ServerProcess(data_dir=data_dir, extra_args=[*API_ONLY, "--api-workers", "1"])
    log_dir = tempfile.mkdtemp(prefix="kyb-full-log-")
    srv.log_path = os.path.join(log_dir, "server.log")  # the log must not need the full disk
    filler = os.path.join(small_tmpfs, "filler")
    try:
        srv.start()
        ns = "/api/v1/namespaces/full/configmaps"
        assert request(srv, "POST", "/api/v1/namespaces", {"metadata": {"name": "full"}})[0] == 201
        acked = []
        for i in range(20):
            status, body = request(srv, "POST", ns, configmap(f"before-{i}", "v" * 1000))
            assert status == 201, body
            acked.append(body["metadata"]["name"])

        fill(filler)
        status, body = request(srv, "POST", ns, configmap("on-a-full-disk", "v" * 100_000))
        assert status == 500, body
        assert "no space left on device" in body["message"], body
        status, body = request(srv, "PUT", f"{ns}/before-0", configmap("before-0", "changed"))
        assert status == 500 and "no space left on device" in body["message"], body
        # Reads keep working and nothing of the failed writes was stored.
        status, body = request(srv, "GET", ns)
        assert status == 200
        assert sorted(i["metadata"]["name"] for i in body["items"]) == sorted(acked)
        assert request(srv, "GET", f"{ns}/before-0")[1]["data"]["v"] == "v" * 1000
        assert request(srv, "GET", f"{ns}/on-a-full-disk")[0] == 404

        # A restart on the full disk comes up, read-only, and says why.
        srv.stop()
        srv.start(timeout=60)
        status, body = request(srv, "GET", ns)
        assert status == 200 and len(body["items"]) == len(acked)
        status, body = request(srv, "POST", ns, configmap("still-full"))
        assert status == 500 and "no space left on device" in body["message"], body
        assert "no space left on device" in srv.log_tail(20_000) or "disk full" in srv.log_tail(20_000)

        # Space freed: writes resume, and everything acknowledged is there.
        os.unlink(filler)
        deadline = time.monotonic() + 30
        while True:
            status, body = request(srv, "POST", ns, configmap("after-space-freed"))
            if status == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 201, body
        status, body = request(srv, "GET", ns)
        names = {i["metadata"]["name"] for i in body["items"]}
        assert names == {*acked, "after-space-freed"}
        srv.stop()
        srv.start(timeout=60)
        status, body = request(srv, "GET", ns)
        assert {i["metadata"]["name"] for i in body["items"]} == {*acked, "after-space-freed"}
    finally:
        srv.cleanup()
        if os.path.exists(filler):
            os.unlink(filler)
        subprocess.run(["rm", "-rf", log_dir], check=False)


# -- file permissions --------------------------------------------------------------------------


def test_data_dir_is_private_and_every_server_file_is_0600() -> None:
    data_dir = tempfile.mkdtemp(prefix="kyb-perm-")
    os.chmod(data_dir, 0o755)
    # Left by an older version: world-readable files are made private at start.
    with open(os.path.join(data_dir, "old-notes.txt"), "w") as f:
        f.write("x")
    os.chmod(os.path.join(data_dir, "old-notes.txt"), 0o644)
    srv = ServerProcess(data_dir=data_dir, extra_args=API_ONLY)
    try:
        srv.start()
        assert request(srv, "POST", "/api/v1/namespaces/default/secrets",
                       {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "stringData": {"password": "hunter2"}})[0] == 201
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        seen = set()
        for root, dirs, files in os.walk(data_dir):
            dirs[:] = [d for d in dirs if d != "kubectl-cache"]  # kubectl's own, made by the test
            for d in dirs:
                assert stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode) == 0o700, d
            for name in files:
                path = os.path.join(root, name)
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    continue
                seen.add(os.path.relpath(path, data_dir))
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (path, oct(os.stat(path).st_mode))
        assert {"state.db", "state.db-wal", "state.db-shm", "kubeconfig.yaml", "pki/ca.key", "pki/ca.crt",
                "pki/admin.token", "server.log", "old-notes.txt"} <= seen
    finally:
        srv.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
