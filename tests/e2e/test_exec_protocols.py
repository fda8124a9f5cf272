"""`pods/exec` and `pods/attach` in every protocol a client may speak, against real
containers on a real node agent: WebSocket v5 (kubectl), SPDY/3.1 (kubectl told not to
use WebSockets: it offers v5..v1 and the server picks v5, which over SPDY is v4), the
older WebSocket subprotocols (v4, channel.k8s.io, and the base64 text ones) through
a plain WebSocket client, and SPDY v3, v2 and channel.k8s.io through a minimal SPDY
client written here from the protocol (only the header dictionary, a constant of
SPDY/3 itself, is shared with the server; kubectl proves it)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse
import zlib
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from kybernetes.api.spdy import HEADER_DICTIONARY
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import kubectl_binary

NS = "exec-e2e"
NODE = "exec-node"
IMAGE = "docker.io/library/busybox:1.35"
SPDY_ENV = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
SCRIPT = "echo to-out; echo to-err >&2; exit 3"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def agent(server, kubectl):
    proc = AgentProcess(server, node_name=NODE, bridge="kybx0", proxy_table="kyb-exec")
    proc.start()
    kubectl.ok("create", "namespace", NS)
    pods = [pod("shell", {"command": ["sh", "-c", "sleep 3600"]}),
            pod("echo", {"stdin": True, "command": ["sh", "-c", "while read l; do echo got:$l; echo err:$l >&2; done"]})]
    kubectl.ok("apply", "-f", "-", stdin="\n---\n".join(pods))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        r = kubectl("get", "pods", "-n", NS, "-o", "jsonpath={.items[*].status.phase}")
        if r.stdout.split() == ["Running", "Running"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"pods not running: {kubectl('get', 'pods', '-n', NS, '-o', 'wide').stdout}"
                             f"{proc.log_tail()}")
    yield proc
    kubectl("delete", "namespace", NS, "--wait=false")
    proc.cleanup()


def pod(name: str, container: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                       "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                                "nodeSelector": {"kubernetes.io/hostname": NODE},
                                "terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "main", "image": IMAGE, **container}]}})


def run_kubectl(agent: AgentProcess, args: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl_binary(), "--kubeconfig", agent.server.kubeconfig, *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def in_terminal(agent: AgentProcess, command: str, env: dict[str, str]) -> str:
    """kubectl exec -it under `script` (a TTY needs kubectl on a terminal) in a 41x103 terminal."""
    prefix = " ".join(f"{k}={v}" for k, v in env.items())
    cmd = (f"stty rows 41 cols 103; {prefix} {kubectl_binary()} --kubeconfig {agent.server.kubeconfig} "
           f"exec -it -n {NS} shell -- {command}")
    r = subprocess.run(["script", "-q", "-c", cmd, "/dev/null"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return r.stdout + r.stderr


# --- kubectl over WebSocket and over SPDY -------------------------------------------------------

@pytest.mark.parametrize("env", [{}, SPDY_ENV], ids=["websocket", "spdy"])
def test_kubectl_exec_splits_streams_and_returns_the_exit_code(agent, env):
    r = run_kubectl(agent, ["exec", "-n", NS, "shell", "--", "sh", "-c", SCRIPT], env=env)
    assert (r.returncode, r.stdout) == (3, "to-out\n"), r.stderr
    assert "to-err" in r.stderr and "command terminated with exit code 3" in r.stderr
    r = run_kubectl(agent, ["exec", "-n", NS, "shell", "--", "true"], env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_kubectl_really_speaks_spdy_when_told(agent):
    r = run_kubectl(agent, ["exec", "-n", NS, "shell", "-v=7", "--", "true"], env=SPDY_ENV)
    assert r.returncode == 0, r.stderr
    assert "X-Stream-Protocol-Version: v5.channel.k8s.io" in r.stderr
    assert 'status="101 Switching Protocols"' in r.stderr


@pytest.mark.parametrize("env", [{}, SPDY_ENV], ids=["websocket", "spdy"])
def test_kubectl_exec_pipes_stdin_until_it_ends(agent, env):
    data = "".join(f"line {i} {'x' * 200}\n" for i in range(2000))  # ~420 KB: many frames
    r = run_kubectl(agent, ["exec", "-i", "-n", NS, "shell", "--", "sh", "-c", "wc -c; echo done >&2"],
                    stdin=data, env=env)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) == len(data.encode())
    assert "done" in r.stderr  # the command ran past the end of its stdin
    r = run_kubectl(agent, ["exec", "-i", "-n", NS, "shell", "--", "sh", "-c", "cat; exit 7"], stdin="abc\n", env=env)
    assert (r.returncode, r.stdout) == (7, "abc\n")


@pytest.mark.parametrize("env", [{}, SPDY_ENV], ids=["websocket", "spdy"])
def test_kubectl_exec_tty_gets_the_terminal_size(agent, env):
    out = in_terminal(agent, "sh -c 'sleep 1; stty size; tty; exit 4'", env)
    assert "41 103" in out and "/dev/pts/" in out, out
    assert "command terminated with exit code 4" in out


@pytest.mark.parametrize("env", [{}, SPDY_ENV], ids=["websocket", "spdy"])
def test_kubectl_attach_relays_stdin_stdout_and_stderr(agent, env):
    proc = subprocess.Popen([kubectl_binary(), "--kubeconfig", agent.server.kubeconfig, "attach", "-i", "-q",
                             "-n", NS, "echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    word = "via-" + ("spdy" if env else "ws")
    proc.stdin.write(word + "\n")
    proc.stdin.flush()
    # attach lasts as long as the container: read what is expected, then stop kubectl
    # (or after 30 s, so that a missing line fails the test instead of hanging it)
    guard = threading.Timer(30, proc.kill)
    guard.start()
    try:
        assert proc.stdout.readline() == f"got:{word}\n"
        assert proc.stderr.readline() == f"err:{word}\n"
    finally:
        guard.cancel()
        proc.terminate()
        proc.communicate(timeout=20)


@pytest.mark.parametrize("env", [{}, SPDY_ENV], ids=["websocket", "spdy"])
def test_kubectl_attach_end_of_stdin_closes_a_stdin_once_container(agent, kubectl, env):
    name = "once-" + ("spdy" if env else "ws")
    kubectl.ok("apply", "-f", "-", stdin=pod(name, {"stdin": True, "stdinOnce": True,
                                                    "command": ["sh", "-c", "cat; echo stdin closed"]}))
    deadline = time.monotonic() + 60
    while kubectl("get", "pod", "-n", NS, name, "-o", "jsonpath={.status.phase}").stdout != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    r = run_kubectl(agent, ["attach", "-i", "-q", "-n", NS, name], stdin="abc\n", env=env, timeout=30)
    assert (r.returncode, r.stdout) == (0, "abc\nstdin closed\n"), r.stderr


@pytest.mark.parametrize("env", [{}, SPDY_ENV], ids=["websocket", "spdy"])
def test_kubectl_run_interactive_reads_stdin_to_its_end_and_cleans_up(agent, kubectl, env):
    # what the conformance spec "should support inline execution and attach" runs
    name = "inline-" + ("spdy" if env else "ws")
    overrides = {"spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                          "nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 1}}
    r = run_kubectl(agent, ["run", name, "-n", NS, "-i", "--rm", "--restart=Never", f"--image={IMAGE}",
                            f"--overrides={json.dumps(overrides)}", "--", "sh", "-c", "cat && echo stdin closed"],
                    stdin="abcd1234", env=env, timeout=90)
    assert r.returncode == 0, r.stderr
    assert "abcd1234stdin closed" in r.stdout
    assert kubectl("get", "pod", "-n", NS, name).returncode != 0  # --rm deleted it


def test_kubectl_cp_both_ways(agent, tmp_path):
    (tmp_path / "up.bin").write_bytes(bytes(range(256)) * 4000)
    run = run_kubectl(agent, ["cp", str(tmp_path / "up.bin"), f"{NS}/shell:/tmp/up.bin"])
    assert run.returncode == 0, run.stderr
    run = run_kubectl(agent, ["cp", f"{NS}/shell:/tmp/up.bin", str(tmp_path / "down.bin")])
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "down.bin").read_bytes() == (tmp_path / "up.bin").read_bytes()


# --- the older WebSocket subprotocols, from a plain WebSocket client ----------------------------

def ssl_context(kubeconfig: str, tmp_path) -> ssl.SSLContext:
    with open(kubeconfig) as f:
        cfg = yaml.safe_load(f)
    user = cfg["users"][0]["user"]
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    ctx = ssl.create_default_context(cadata=base64.b64decode(
        cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def exec_url(agent: AgentProcess, pod_name: str = "shell", command: tuple[str, ...] = ("sh", "-c", SCRIPT),
             **flags: str) -> str:
    query = "&".join([f"command={urllib.parse.quote(c, safe='')}" for c in command] +
                     [f"{k}={v}" for k, v in ({"stdout": "true", "stderr": "true"} | flags).items()])
    return f"{agent.server.url}/api/v1/namespaces/{NS}/pods/{pod_name}/exec?{query}"


async def ws_session(url: str, ctx: ssl.SSLContext, protocols: tuple[str, ...],
                     send: list[bytes | str] = ()) -> tuple[str | None, list[tuple[int, bytes]]]:
    """(the subprotocol the server chose, the (channel, payload) messages received)."""
    got: list[tuple[int, bytes]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=protocols, ssl=ctx) as ws:
        for m in send:
            await (ws.send_str(m) if isinstance(m, str) else ws.send_bytes(m))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                got.append((msg.data[0], msg.data[1:]))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                got.append((int(msg.data[0]), base64.b64decode(msg.data[1:])))
        return ws.protocol, got


def joined(messages: list[tuple[int, bytes]], channel: int) -> bytes:
    return b"".join(p for c, p in messages if c == channel)


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
async def test_websocket_v4_status_carries_the_exit_code(agent, tmp_path, protocol):
    chosen, got = await ws_session(exec_url(agent), ssl_context(agent.server.kubeconfig, tmp_path),
                                   ("v9.unknown", protocol))
    assert chosen == protocol
    assert (joined(got, 1), joined(got, 2)) == (b"to-out\n", b"to-err\n")
    status = json.loads(joined(got, 3))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    _, got = await ws_session(exec_url(agent, command=("true",)), ssl_context(agent.server.kubeconfig, tmp_path),
                              (protocol,))
    assert json.loads(joined(got, 3))["status"] == "Success"


@pytest.mark.parametrize("protocol", ["channel.k8s.io", "base64.channel.k8s.io", None])
async def test_websocket_before_v4_reports_failures_as_text(agent, tmp_path, protocol):
    offered = (protocol,) if protocol else ()
    ctx = ssl_context(agent.server.kubeconfig, tmp_path)
    chosen, got = await ws_session(exec_url(agent), ctx, offered)
    assert chosen == protocol
    assert (joined(got, 1), joined(got, 2)) == (b"to-out\n", b"to-err\n")
    error = joined(got, 3).decode()
    assert "exit code 3" in error and not error.startswith("{")
    _, got = await ws_session(exec_url(agent, command=("true",)), ctx, offered)
    assert joined(got, 3) == b""  # success says nothing


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "base64.channel.k8s.io"])
async def test_websocket_stdin_in_binary_and_base64(agent, tmp_path, protocol):
    frame: bytes | str = (b"\x00hello\n" if not protocol.startswith("base64") else "0" + base64.b64encode(
        b"hello\n").decode())
    _, got = await ws_session(exec_url(agent, command=("head", "-n", "1"), stdin="true"),
                              ssl_context(agent.server.kubeconfig, tmp_path), (protocol,), send=[frame])
    assert joined(got, 1) == b"hello\n"


async def test_websocket_v5_close_signal_ends_stdin(agent, tmp_path):
    _, got = await ws_session(exec_url(agent, command=("sh", "-c", "cat; echo eof"), stdin="true"),
                              ssl_context(agent.server.kubeconfig, tmp_path), ("v5.channel.k8s.io",),
                              send=[b"\x00abc\n", b"\xff\x00"])
    assert joined(got, 1) == b"abc\neof\n"
    assert json.loads(joined(got, 3))["status"] == "Success"


async def test_websocket_unknown_subprotocols_are_refused(agent, tmp_path):
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await ws_session(exec_url(agent), ssl_context(agent.server.kubeconfig, tmp_path), ("v3.channel.k8s.io",))
    assert e.value.status == 400


# --- a minimal SPDY/3.1 client -----------------------------------------------------------------

class SpdyClient:
    """Just enough of SPDY/3.1 to run an exec: the upgrade, SYN_STREAM with a
    `streamtype` header, data frames with FIN, and reading data frames per stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.deflate = zlib.compressobj(zdict=HEADER_DICTIONARY)
        self.next_id = 1
        self.streams: dict[str, int] = {}
        self.received: dict[int, bytes] = {}
        self.finished: set[int] = set()
        self.replied: set[int] = set()
        self.reset: set[int] = set()

    @classmethod
    async def connect(cls, url: str, ctx: ssl.SSLContext, versions: list[str]) -> tuple[SpdyClient | None, bytes]:
        """The client after a 101, or None and the server's whole answer."""
        parsed = URL(url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port, ssl=ctx)
        head = [f"POST {parsed.raw_path_qs} HTTP/1.1", f"Host: {parsed.host}:{parsed.port}", "Content-Length: 0",
                "Connection: Upgrade", "Upgrade: SPDY/3.1"] + [f"X-Stream-Protocol-Version: {v}" for v in versions]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = await reader.readuntil(b"\r\n\r\n")
        if not answer.startswith(b"HTTP/1.1 101"):
            answer += await reader.read(4096)
            writer.close()
            return None, answer
        return cls(reader, writer), answer

    def headers(self, headers: dict[str, str]) -> bytes:
        block = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items())
        return self.deflate.compress(block) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def control(self, ftype: int, body: bytes, flags: int = 0) -> None:
        self.writer.write(struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(body)) + body)

    def open(self, kind: str) -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        self.control(1, struct.pack(">IIH", sid, 0, 0) + self.headers({"streamtype": kind}))
        self.streams[kind] = sid
        return sid

    def data(self, kind: str, payload: bytes, fin: bool = False) -> None:
        self.writer.write(struct.pack(">II", self.streams[kind], ((1 if fin else 0) << 24) | len(payload)) + payload)

    async def run(self, timeout: float = 30) -> None:
        """Read frames until the server has finished every stream this client opened."""
        async with asyncio.timeout(timeout):
            while not set(self.streams.values()) <= self.finished | self.reset:
                first, second = struct.unpack(">II", await self.reader.readexactly(8))
                body = await self.reader.readexactly(second & 0xFFFFFF)
                fin = bool(second >> 24 & 1)
                if first & 0x80000000:
                    ftype = first & 0xFFFF
                    sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF if body else 0
                    if ftype == 2:  # SYN_REPLY
                        self.replied.add(sid)
                        if fin:
                            self.finished.add(sid)
                    elif ftype == 3:  # RST_STREAM
                        self.reset.add(sid)
                else:
                    self.received[first] = self.received.get(first, b"") + body
                    if fin:
                        self.finished.add(first)

    def got(self, kind: str) -> bytes:
        return self.received.get(self.streams[kind], b"")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


@pytest.mark.parametrize("version", ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                                     "channel.k8s.io"])
async def test_spdy_versions_stream_stdout_stderr_and_the_status(agent, tmp_path, version):
    ctx = ssl_context(agent.server.kubeconfig, tmp_path)
    client, answer = await SpdyClient.connect(exec_url(agent), ctx, [version, "v2.channel.k8s.io"])
    assert client is not None, answer
    assert f"X-Stream-Protocol-Version: {version}".encode() in answer and b"Upgrade: SPDY/3.1" in answer
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    await client.run()
    await client.close()
    assert {client.streams[k] for k in ("error", "stdout", "stderr")} <= client.replied
    assert (client.got("stdout"), client.got("stderr")) == (b"to-out\n", b"to-err\n")
    error = client.got("error")
    if version.startswith("v4"):
        status = json.loads(error)
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    else:
        assert b"exit code 3" in error and not error.startswith(b"{")


async def test_spdy_stdin_half_close_and_resize(agent, tmp_path):
    ctx = ssl_context(agent.server.kubeconfig, tmp_path)
    url = exec_url(agent, command=("sh", "-c", "sleep 1; stty size; cat; echo eof"), stdin="true", tty="true",
                   stderr="false")
    client, answer = await SpdyClient.connect(url, ctx, ["v4.channel.k8s.io"])
    assert client is not None, answer
    for kind in ("error", "stdin", "stdout", "resize"):
        client.open(kind)
    client.data("resize", b'{"Width":77,"Height":19}\n')
    client.data("stdin", b"typed\n")
    await asyncio.sleep(2)
    client.data("stdin", b"\x04")  # the terminal's end of input: with a TTY, stdin ends at ^D
    await client.run()
    await client.close()
    out = client.got("stdout").replace(b"\r", b"")
    assert b"19 77\n" in out and b"typed\n" in out and out.endswith(b"eof\n")
    assert json.loads(client.got("error"))["status"] == "Success"


async def test_spdy_refusals(agent, tmp_path):
    ctx = ssl_context(agent.server.kubeconfig, tmp_path)
    client, answer = await SpdyClient.connect(exec_url(agent), ctx, ["v9.channel.k8s.io"])
    assert client is None and answer.startswith(b"HTTP/1.1 403") and b"unable to negotiate protocol" in answer
    client, answer = await SpdyClient.connect(exec_url(agent), ctx, [])
    assert client is None and answer.startswith(b"HTTP/1.1 400") and b"X-Stream-Protocol-Version is required" in answer
    # A stream type the version does not have is refused; the session goes on.
    client, _ = await SpdyClient.connect(exec_url(agent, command=("true",)), ctx, ["v2.channel.k8s.io"])
    assert client is not None
    for kind in ("error", "resize", "stdout", "stderr"):
        client.open(kind)
    await client.run()
    await client.close()
    assert client.streams["resize"] in client.reset and client.got("error") == b""


async def test_malformed_spdy_closes_only_that_connection(agent, tmp_path):
    ctx = ssl_context(agent.server.kubeconfig, tmp_path)
    for garbage in (b"\x80\x02\x00\x01\x00\x00\x00\x00",  # SPDY/2
                    b"\x80\x03\x00\x01\x00\x00\x00\x0a" + b"\x00" * 10,  # SYN_STREAM without a header block
                    b"\x80\x03\x00\x01\x00\x00\x00\x0e" + b"\x00\x00\x00\x01" + b"\x00" * 6 + b"junk"):
        client, _ = await SpdyClient.connect(exec_url(agent), ctx, ["v4.channel.k8s.io"])
        assert client is not None
        client.writer.write(garbage)
        async with asyncio.timeout(20):
            rest = await client.reader.read()  # the server closes the connection
        await client.close()
        assert rest == b"" or rest[:4] == b"\x80\x03\x00\x07"  # nothing, or a GOAWAY
    r = run_kubectl(agent, ["exec", "-n", NS, "shell", "--", "echo", "still-serving"], env=SPDY_ENV)
    assert r.stdout == "still-serving\n", r.stderr


async def test_spdy_stdin_ends_with_the_streams_fin(agent, tmp_path):
    ctx = ssl_context(agent.server.kubeconfig, tmp_path)
    url = exec_url(agent, command=("sh", "-c", "cat; echo eof"), stdin="true")
    client, answer = await SpdyClient.connect(url, ctx, ["v2.channel.k8s.io"])
    assert client is not None, answer
    for kind in ("error", "stdin", "stdout", "stderr"):
        client.open(kind)
    client.data("stdin", b"one\n")
    client.data("stdin", b"two\n", fin=True)
    await client.run()
    await client.close()
    assert client.got("stdout") == b"one\ntwo\neof\n" and client.got("error") == b""


def test_python_client_exec_over_v4(agent, k8s_client):
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(k8s_client)
    out = stream(core.connect_get_namespaced_pod_exec, "shell", NS, command=["sh", "-c", "echo hi"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "hi\n"
    resp = stream(core.connect_get_namespaced_pod_exec, "shell", NS, command=["sh", "-c", "cat; exit 5"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    resp.write_stdin("typed\n")
    got = ""
    deadline = time.monotonic() + 10
    while "typed" not in got and time.monotonic() < deadline:
        resp.update(timeout=1)
        got += resp.read_stdout()
    assert got == "typed\n"
    resp.close()  # v4 cannot end stdin: the client ends the session, the command ends with it
