"""crun runs from a read-only bind mount of itself (agent/containerd.py): a binary there
cannot be overwritten through /proc/self/exe, so crun skips copying itself at every call.
The mount is made once, renewed when the binary was replaced, and the binary's own path is
used when no mount can be had."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from kybernetes.agent.containerd import read_only_binary
from kybernetes.testing.agent import mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount")


@pytest.fixture
def workdir(tmp_path: str) -> Iterator[str]:
    path = str(tmp_path)
    yield path
    for mount in sorted(mounts_under(path), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)


def _binary(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho {text}\n")
    os.chmod(path, 0o755)
    return path


def test_the_binary_runs_from_a_read_only_mount_made_once(workdir: str) -> None:
    real = _binary(os.path.join(workdir, "runtime"), "one")
    target = os.path.join(workdir, "state", "bin", "runtime")
    assert read_only_binary(real, target) == target
    assert subprocess.run([target], capture_output=True, text=True).stdout == "one\n"
    with pytest.raises(OSError):
        open(target, "a").close()  # noqa: SIM115 - the write is what must fail
    # An agent started again finds its mount and makes no second one.
    assert read_only_binary(real, target) == target
    assert mounts_under(workdir) == [target]


def test_a_replaced_binary_is_mounted_afresh(workdir: str) -> None:
    real = _binary(os.path.join(workdir, "runtime"), "one")
    target = os.path.join(workdir, "bin", "runtime")
    read_only_binary(real, target)
    # A package upgrade puts a new file in place of the old one.
    _binary(real + ".new", "two")
    os.replace(real + ".new", real)
    assert read_only_binary(real, target) == target
    assert subprocess.run([target], capture_output=True, text=True).stdout == "two\n"
    assert mounts_under(workdir) == [target]


def test_without_a_mount_the_binary_itself_is_run(workdir: str) -> None:
    real = _binary(os.path.join(workdir, "runtime"), "one")
    # Where the mount point cannot be made (a file stands where its directory must be).
    _binary(os.path.join(workdir, "bin"), "in the way")
    assert read_only_binary(real, os.path.join(workdir, "bin", "runtime")) == real
    assert mounts_under(workdir) == []
