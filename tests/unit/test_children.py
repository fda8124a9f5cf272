"""A child started to die with its parent is gone once the parent is killed, and runs
the program itself (its pid is the program's)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kybernetes.api.children import dying_with_parent

PARENT = """
import sys, threading, time
from kybernetes.api.children import popen_dying_with_parent
# A busy extra thread, as gRPC's or the SQLite writer's would be, while the child is forked.
threading.Thread(target=lambda: [sum(range(1000)) for _ in iter(int, 1)], daemon=True).start()
child = popen_dying_with_parent(["sleep", "60"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _program(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0]


def test_the_child_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 5
        while _program(pid) != b"sleep" and time.monotonic() < deadline:
            time.sleep(0.02)  # setpriv may not have started it yet
        assert _program(pid) == b"sleep"  # the program itself, with the pid it was given
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        parent.kill()
        parent.wait(10)


def test_the_command_is_the_programs_own_after_the_wrapper() -> None:
    argv = dying_with_parent(["etcd", "--name", "a"])
    assert argv[-3:] == ["etcd", "--name", "a"]
