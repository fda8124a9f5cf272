"""The shim launcher: a pod's container is pointed at its sandbox's running shim without
starting the shim's binary; everything else goes to that binary unchanged."""

import json
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from kybernetes.agent.shimlauncher import write_launcher

SANDBOX = "a" * 63 + "1"
CONTAINER = "b" * 63 + "2"


@pytest.fixture
def tasks():
    """A task dir with a sandbox whose shim listens, the launcher, and a stand-in for the
    real shim binary that says how it was called."""
    base = tempfile.mkdtemp(prefix="kyb-shim-", dir="/tmp")  # short: a socket path is <= 108 bytes
    listener = socket.socket(socket.AF_UNIX)
    try:
        sock = os.path.join(base, "s", "shim.sock")
        os.makedirs(os.path.dirname(sock))
        listener.bind(sock)
        listener.listen()
        real = os.path.join(base, "real-shim")
        with open(real, "w") as f:
            f.write('#!/bin/sh\necho "real $*"\n')
        os.chmod(real, 0o755)
        tasks = os.path.join(base, "tasks")
        _bundle(tasks, SANDBOX, SANDBOX, "sandbox")
        with open(os.path.join(tasks, SANDBOX, "address"), "w") as f:
            f.write(f"unix://{sock}")
        _bundle(tasks, CONTAINER, SANDBOX, "container")
        yield tasks, write_launcher(os.path.join(base, "bin", "containerd-shim-runc-v2"), real), sock
    finally:
        listener.close()
        shutil.rmtree(base, ignore_errors=True)


def _bundle(tasks: str, cid: str, sandbox_id: str, kind: str) -> None:
    os.makedirs(os.path.join(tasks, cid))
    spec = {"ociVersion": "1.0.2-dev", "process": {"env": ['X="io.kubernetes.cri.sandbox-id":"' + "c" * 64 + '"']},
            "annotations": {"io.kubernetes.cri.container-type": kind, "io.kubernetes.cri.sandbox-id": sandbox_id}}
    with open(os.path.join(tasks, cid, "config.json"), "w") as f:
        json.dump(spec, f, separators=(",", ":"))


def _launch(launcher: str, bundle: str, cid: str, action: str = "start") -> str:
    args = ["-namespace", "k8s.io", "-address", "/run/c.sock", "-publish-binary", "/usr/bin/containerd",
            "-id", cid, action]
    out = subprocess.run([launcher, *args], cwd=bundle, capture_output=True, text=True, check=True)
    return out.stdout


def test_a_container_is_pointed_at_its_sandboxs_shim(tasks):
    tasks, launcher, sock = tasks
    bundle = os.path.join(tasks, CONTAINER)
    assert _launch(launcher, bundle, CONTAINER) == f"unix://{sock}"
    with open(os.path.join(bundle, "address")) as f:
        assert f.read() == f"unix://{sock}"  # as the shim writes it, for containerd's later calls
    assert os.stat(launcher).st_mode & 0o777 == 0o700


def test_everything_else_goes_to_the_real_shim(tasks):
    tasks, launcher, sock = tasks
    args = f"-namespace k8s.io -address /run/c.sock -publish-binary /usr/bin/containerd -id {SANDBOX}"
    # The sandbox itself: a new shim.
    assert _launch(launcher, os.path.join(tasks, SANDBOX), SANDBOX).strip() == f"real {args} start"
    # Any other action.
    assert _launch(launcher, os.path.join(tasks, CONTAINER), CONTAINER, "delete").startswith("real ")
    # The sandbox's shim gone (its socket with it).
    os.unlink(sock)
    assert _launch(launcher, os.path.join(tasks, CONTAINER), CONTAINER).startswith("real ")


@pytest.mark.parametrize("sandbox_id, address", [
    ("../" + "a" * 61, None),  # not an id: never a path out of the task dir
    ("a" * 10, None),
    (SANDBOX, "unix://relative/s.sock"),
    (SANDBOX, "unix:///tmp/x y.sock"),
    (SANDBOX, ""),
])
def test_anything_unexpected_goes_to_the_real_shim(tasks, sandbox_id, address):
    tasks, launcher, sock = tasks
    shutil.rmtree(os.path.join(tasks, CONTAINER))
    _bundle(tasks, CONTAINER, sandbox_id, "container")
    if address is not None:
        with open(os.path.join(tasks, SANDBOX, "address"), "w") as f:
            f.write(address)
    assert _launch(launcher, os.path.join(tasks, CONTAINER), CONTAINER).startswith("real ")
    assert not os.path.exists(os.path.join(tasks, CONTAINER, "address"))
