"""How a process starts a child that must not outlive it: the server's controller
manager, scheduler, API workers and embedded etcd member; the servers, agents and
simulators a test or benchmark starts.

The kernel sends such a child SIGTERM when the thread that forked it ends, however the
parent dies (kill -9 included): PR_SET_PDEATHSIG. util-linux's `setpriv` asks for it in
the child, after the fork, then runs the program. A `preexec_fn` would do the same in
Python inside the forked child, which is unsafe once the parent has other threads
(gRPC's for etcd, the SQLite writer): such a child was seen to crash before its program
started. Without `setpriv` (not a Debian system) the `preexec_fn` is the fallback.
"""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
from collections.abc import Sequence
from typing import Any


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def _ask_for_sigterm() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def dying_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` run so that the child gets SIGTERM when the thread that started it ends
    (unchanged when `setpriv` is missing: use `popen_dying_with_parent` then)."""
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def popen_dying_with_parent(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(argv, **kwargs)` for a child that must end with this thread.
    Its pid is the program's own (`setpriv` execs it)."""
    if _setpriv():
        return subprocess.Popen(dying_with_parent(argv), **kwargs)
    return subprocess.Popen(list(argv), preexec_fn=_ask_for_sigterm, **kwargs)  # noqa: PLW1509
