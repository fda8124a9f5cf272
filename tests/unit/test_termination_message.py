"""A finished container's termination message, as the kubelet reports it (upstream's
`[sig-node] Container Runtime blackbox test on terminated container` specs): the file at
its terminationMessagePath, or with FallbackToLogsOnError the end of its log when it failed."""

from __future__ import annotations

import os
import stat

from kybernetes.agent.logs import (
    log_tail_text,
    make_termination_file,
    read_termination_message,
    termination_message,
)

TS = b"2026-06-01T12:00:00.000000000Z"


def _log(*chunks: tuple[str, bytes]) -> bytes:
    return b"".join(TS + b" stdout " + tag.encode() + b" " + text + b"\n" for tag, text in chunks)


def test_the_file_wins_and_fallback_only_on_failure() -> None:
    log = _log(("F", b"line"))
    assert termination_message("OK", "FallbackToLogsOnError", 1, log) == "OK"
    assert termination_message("", "FallbackToLogsOnError", 1, log) == "line\n"
    assert termination_message("", "FallbackToLogsOnError", 0, log) == ""
    assert termination_message("", "File", 1, log) == ""


def test_log_tail_keeps_an_unended_last_line_as_written() -> None:
    # `echo -n DONE; false`: the runtime logs a partial chunk that nothing ends.
    assert log_tail_text(_log(("P", b"DONE"))) == "DONE"
    assert log_tail_text(_log(("F", b"a"), ("P", b"DO"), ("P", b"NE"))) == "a\nDONE"
    many = _log(*[("F", str(i).encode()) for i in range(100)])
    assert log_tail_text(many).splitlines() == [str(i) for i in range(20, 100)]
    assert len(log_tail_text(_log(("F", b"x" * 5000)))) == 2048


def test_termination_file_is_writable_by_anyone_and_read_back(tmp_path) -> None:
    path = make_termination_file(str(tmp_path), "c")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 and os.path.getsize(path) == 0
    assert read_termination_message(path, "File", 0, "") == ""
    with open(path, "wb") as f:
        f.write(b"DONE" + b"x" * 5000)
    assert read_termination_message(path, "File", 0, "") == "DONE" + "x" * 4092
    log = tmp_path / "0.log"
    log.write_bytes(_log(("P", b"from log")))
    empty = make_termination_file(str(tmp_path), "c")
    assert empty != path
    assert read_termination_message(empty, "FallbackToLogsOnError", 2, str(log)) == "from log"
    assert read_termination_message(str(tmp_path / "gone"), "File", 0, "") == ""
