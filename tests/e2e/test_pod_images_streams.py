"""On a real node agent: exec stdin sent as WebSocket text (the official Python client),
image pull policies with the image's digest in status, and RuntimeClass handlers.

One agent and one local registry (`docker-registry`) for the module: `Always` pulls from
the registry at every start, so moving the tag shows a new digest in `imageID`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import time

import aiohttp
import pytest
import yaml
from kubernetes import client, config
from kubernetes.stream import stream

from kybernetes.testing.agent import TEST_TAINT, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "images-streams"
NODE = "kyb-h4-node"
POD_CIDR = "10.42.236.0/24"
IMAGE = "busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def cluster():
    with node_cluster(NODE, "kyb236", POD_CIDR, NS) as pair:
        yield pair


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from kybernetes.agent.images import build_all
    from kybernetes.testing.registry import RegistryProcess

    reg = RegistryProcess()
    reg.start()
    images = str(tmp_path_factory.mktemp("images"))
    digests = build_all(images)
    reg.push_oci_tar(os.path.join(images, "busybox.tar"), "kyb/busybox", "moving")
    yield reg, images, digests
    reg.stop()


def apply(srv: ServerProcess, name: str, containers: list[dict], **spec) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
           "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}], "containers": containers, **spec}}
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    assert r.returncode == 0, r.stderr


def sleeper(image: str = IMAGE, **extra) -> dict:
    return {"name": "c", "image": image, "command": ["sh", "-c", "exec sleep 3600"], **extra}


def wait_status(srv: ServerProcess, name: str, ok, what: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    st: dict = {}
    while time.monotonic() < deadline:
        r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
        if r.returncode == 0:
            statuses = json.loads(r.stdout).get("status", {}).get("containerStatuses") or []
            st = statuses[0] if statuses else {}
            if ok(st):
                return st
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never {what}: {json.dumps(st)}")


def running(st: dict) -> bool:
    return "running" in (st.get("state") or {})


def waiting(*reasons: str):
    return lambda st: (st.get("state") or {}).get("waiting", {}).get("reason") in reasons


def events(srv: ServerProcess, name: str) -> list[tuple[str, str, str]]:
    r = srv.kubectl("-n", NS, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return [(e.get("type", ""), e.get("reason", ""), e.get("message", "")) for e in json.loads(r.stdout)["items"]]


def core(srv: ServerProcess) -> client.CoreV1Api:
    cfg = client.Configuration()
    config.load_kube_config(config_file=srv.kubeconfig, client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


@pytest.fixture(scope="module")
def shell(cluster):
    srv, _ = cluster
    apply(srv, "shell", [sleeper()])
    wait_status(srv, "shell", running, "ran")
    return srv


def test_python_client_exec_with_text_stdin_and_the_v5_close(shell):
    resp = stream(core(shell).connect_get_namespaced_pod_exec, "shell", NS,
                  command=["sh", "-c", "cat; echo after-eof; exit 4"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    assert resp.subprotocol == "v5.channel.k8s.io"
    resp.write_stdin("typed text\n")  # a text frame: chr(0) + the text
    resp.write_stdin(b"bytes too\n")  # a binary frame
    resp.close_channel(0)  # v5: the end of stdin, so `cat` ends and the command exits
    out = ""
    deadline = time.monotonic() + 20
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
        out += resp.read_stdout()
    out += resp.read_stdout()
    assert out == "typed text\nbytes too\nafter-eof\n"
    assert resp.returncode == 4


def _ssl_context(kubeconfig: str, tmp_path) -> tuple[ssl.SSLContext, str]:
    with open(kubeconfig) as f:
        cfg = yaml.safe_load(f)
    user = cfg["users"][0]["user"]
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    cluster = cfg["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    ctx.load_cert_chain(str(cert), str(key))
    return ctx, cluster["server"]


def test_text_frames_reach_the_agent_through_the_node_proxy(shell, tmp_path):
    """nodes/proxy relays frames as they are: the agent's own server reads text frames too."""
    ctx, url = _ssl_context(shell.kubeconfig, tmp_path)

    async def session() -> list[bytes]:
        got = []
        target = f"{url}/api/v1/nodes/{NODE}/proxy/exec/{NS}/shell/c?command=cat&stdin=true&stdout=true"
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(target, protocols=("v5.channel.k8s.io",), ssl=ctx) as ws:
            await ws.send_str("\x00typed \u00e9\n")
            await ws.send_bytes(b"\xff\x00")
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got.append(msg.data)
        return got

    got = asyncio.run(asyncio.wait_for(session(), 30))
    assert b"".join(m[1:] for m in got if m[0] == 1) == "typed \u00e9\n".encode()
    assert json.loads(next(m[1:] for m in got if m[0] == 3))["status"] == "Success"


def test_image_pull_policies_and_digests(cluster, registry):
    srv, _ = cluster
    reg, images, digests = registry
    remote = f"{reg.host}/kyb/busybox:moving"
    apply(srv, "present", [sleeper(imagePullPolicy="IfNotPresent")])
    apply(srv, "never", [sleeper("busybox:absent", imagePullPolicy="Never")])
    apply(srv, "missing", [sleeper(f"{reg.host}/kyb/nothing:1", imagePullPolicy="IfNotPresent")])

    st = wait_status(srv, "present", running, "ran")
    # As the kubelet shows containerd's names: the normalized image and its repository digest.
    # (Checked before the same image is pulled under the registry's name below: containerd then
    # reports the first of its repository digests, the registry's, as it would to the kubelet.)
    assert st["image"] == "docker.io/library/busybox:1.35"
    assert st["imageID"] == f"docker.io/library/busybox@{digests['busybox.tar']}"
    assert ("Normal", "Pulled", 'Container image "busybox:1.35" already present on machine') in events(srv, "present")

    apply(srv, "always", [sleeper(remote, imagePullPolicy="Always")])

    st = wait_status(srv, "always", running, "ran")
    assert st["imageID"] == f"{reg.host}/kyb/busybox@{digests['busybox.tar']}"
    pulled = [m for t, r, m in events(srv, "always") if r == "Pulled"]
    assert ("Normal", "Pulling", f'Pulling image "{remote}"') in events(srv, "always")
    assert pulled and pulled[0].startswith(f'Successfully pulled image "{remote}" in ') and \
        "including waiting). Image size: " in pulled[0]

    st = wait_status(srv, "never", waiting("ErrImageNeverPull"), "refused the pull")
    message = 'Container image "busybox:absent" is not present with pull policy of Never'
    assert st["state"]["waiting"]["message"] == message
    assert ("Warning", "ErrImageNeverPull", message) in events(srv, "never")

    st = wait_status(srv, "missing", waiting("ErrImagePull", "ImagePullBackOff"), "failed to pull")
    failed = [m for t, r, m in events(srv, "missing") if r == "Failed"]
    assert any(m.startswith(f'Failed to pull image "{reg.host}/kyb/nothing:1": ') and "not found" in m
               for m in failed), failed
    assert "Error: ErrImagePull" in failed
    wait_status(srv, "missing", waiting("ImagePullBackOff"), "backed off", timeout=30)

    # The tag now names another image: Always pulls again although the old one is present.
    reg.push_oci_tar(os.path.join(images, "pause.tar"), "kyb/busybox", "moving")
    apply(srv, "always-again", [sleeper(remote, imagePullPolicy="Always")])
    st = wait_status(srv, "always-again", running, "ran")
    assert st["imageID"] == f"{reg.host}/kyb/busybox@{digests['pause.tar']}"
    assert ("Normal", "Pulling", f'Pulling image "{remote}"') in events(srv, "always-again")


def test_runtime_class_handlers_on_the_node(cluster):
    srv, agent = cluster
    handlers = (("h4-runc", "runc"), ("h4-crun", "crun"), ("h4-bogus", "nope")) if shutil.which("crun") \
        else (("h4-runc", "runc"), ("h4-bogus", "nope"))
    classes = [{"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name},
                "handler": handler} for name, handler in handlers]
    r = srv.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(c) for c in classes))
    assert r.returncode == 0, r.stderr
    apply(srv, "runc-class", [sleeper()], runtimeClassName="h4-runc")
    apply(srv, "bogus-class", [sleeper()], runtimeClassName="h4-bogus")
    # Each handler's containers are that runtime's: their state is in its own root.
    state = os.path.join(agent.data_dir, "containerd", "st")
    cid = wait_status(srv, "runc-class", running, "ran")["containerID"].removeprefix("containerd://")
    assert os.path.isdir(os.path.join(state, "runc", "k8s.io", cid))
    if shutil.which("crun"):
        apply(srv, "crun-class", [sleeper()], runtimeClassName="h4-crun")
        cid = wait_status(srv, "crun-class", running, "ran")["containerID"].removeprefix("containerd://")
        assert os.path.isdir(os.path.join(state, "crun", "k8s.io", cid))
        assert not os.path.exists(os.path.join(state, "runc", "k8s.io", cid))
        r = srv.kubectl("-n", NS, "exec", "crun-class", "--", "echo", "on crun")
        assert r.returncode == 0 and r.stdout == "on crun\n", r.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        failed = [m for t, r, m in events(srv, "bogus-class") if r == "FailedCreatePodSandBox"]
        if failed:
            break
        time.sleep(0.5)
    assert failed and failed[0].startswith("Failed to create pod sandbox: rpc error: code = ") and \
        'no runtime for "nope" is configured' in failed[0], failed
    st = wait_status(srv, "bogus-class", waiting("ContainerCreating"), "waited")
    assert "running" not in st["state"]
