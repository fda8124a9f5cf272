"""Container logs as `kubectl logs` shows them, read from the CRI log files the runtime
writes (one line per chunk: `TIMESTAMP STREAM TAG MESSAGE`, tag `P` for a partial line
and `F` for the end of one). Parsing and selection are pure; `follow` reads on."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kybernetes.api.timefmt import parse_time


@dataclass(frozen=True)
class LogOptions:
    timestamps: bool = False
    tail_lines: int | None = None
    since: dt.datetime | None = None
    limit_bytes: int | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str
    text: bytes  # with its newline, partial chunks joined


def parse_lines(data: bytes) -> tuple[list[LogLine], bytes]:
    """Whole log lines in `data`, and the unfinished rest (a line still being written).
    Partial chunks (tag P) are joined with the chunk that ends them."""
    out: list[LogLine] = []
    pending: bytes = b""
    first_ts = ""
    rest_start = 0
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        raw = data[pos:nl]
        pos = nl + 1
        parts = raw.split(b" ", 3)
        if len(parts) < 3:
            rest_start = pos
            continue
        ts, stream, tag = parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), parts[2]
        msg = parts[3] if len(parts) > 3 else b""
        if not pending:
            first_ts = ts
        if tag == b"P":
            pending += msg
            continue
        out.append(LogLine(first_ts, stream, pending + msg + b"\n"))
        pending = b""
        rest_start = pos
    return out, data[rest_start:]


def unfinished_line(rest: bytes) -> LogLine | None:
    """The partial chunks (tag P) a log ends with, when no more is coming for now: shown
    without a newline, as the kubelet shows a container's last line that has none."""
    text, first_ts, stream = b"", "", ""
    for raw in rest.split(b"\n")[:-1]:
        parts = raw.split(b" ", 3)
        if len(parts) < 3 or parts[2] != b"P":
            continue
        if not text:
            first_ts, stream = parts[0].decode(errors="replace"), parts[1].decode(errors="replace")
        text += parts[3] if len(parts) > 3 else b""
    return LogLine(first_ts, stream, text) if text else None


def select(lines: list[LogLine], opts: LogOptions) -> list[LogLine]:
    if opts.since is not None:
        lines = [ln for ln in lines if _after(ln.timestamp, opts.since)]
    if opts.tail_lines is not None:
        lines = lines[-opts.tail_lines:] if opts.tail_lines > 0 else []
    return lines


def _after(ts: str, since: dt.datetime) -> bool:
    try:
        return parse_time(ts) >= since
    except ValueError:
        return True


def render(line: LogLine, opts: LogOptions) -> bytes:
    if opts.timestamps:
        return line.timestamp.encode() + b" " + line.text
    return line.text


async def read_log(path: str, opts: LogOptions, follow: bool, still_running: asyncio.Event | None = None,
                   poll: float = 0.2) -> AsyncIterator[bytes]:
    """The log of one container as bytes chunks; with `follow`, keeps reading new lines
    until `still_running` is cleared (the container exited) and the file is drained."""
    sent = 0

    def budget(chunk: bytes) -> bytes:
        if opts.limit_bytes is None:
            return chunk
        return chunk[:max(opts.limit_bytes - sent, 0)]

    try:
        with open(path, "rb") as f:
            data = f.read()
            offset = len(data)
    except FileNotFoundError:
        data, offset = b"", 0
    lines, rest = parse_lines(data)
    unfinished = unfinished_line(rest) if not follow else None
    for line in select(lines + ([unfinished] if unfinished else []), opts):
        chunk = budget(render(line, opts))
        if not chunk:
            return
        sent += len(chunk)
        yield chunk
    if not follow:
        return
    since_opts = LogOptions(timestamps=opts.timestamps)
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                more = f.read()
        except FileNotFoundError:
            more = b""
        if more:
            offset += len(more)
            lines, rest = parse_lines(rest + more)
            for line in lines:
                chunk = budget(render(line, since_opts))
                if not chunk:
                    return
                sent += len(chunk)
                yield chunk
            continue
        if still_running is not None and not still_running.is_set():
            last = unfinished_line(rest)
            if last is not None and budget(render(last, since_opts)):
                yield budget(render(last, since_opts))
            return
        await asyncio.sleep(poll)



# The kubelet's limits for a termination message: the file is read up to 4 KiB; the
# FallbackToLogsOnError policy takes the log's last 80 lines, at most 2 KiB of them.
TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


def log_tail_text(data: bytes, lines: int = FALLBACK_LOG_LINES, limit: int = FALLBACK_LOG_BYTES) -> str:
    """The last `lines` lines of a CRI log as the container wrote them (a last line without
    its newline included as written), cut to the last `limit` bytes."""
    whole, rest = parse_lines(data)
    text = b"".join(ln.text for ln in whole[-lines:] if lines > 0)
    for raw in rest.split(b"\n"):
        parts = raw.split(b" ", 3)
        if len(parts) == 4:  # chunks of a line the container never ended
            text += parts[3]
    return text[-limit:].decode(errors="replace")


def termination_message(file_text: str, policy: str, exit_code: int, log_data: bytes | None) -> str:
    """What the container left at its terminationMessagePath, or, with FallbackToLogsOnError,
    the end of its log when it failed and left nothing."""
    if file_text or policy != "FallbackToLogsOnError" or exit_code == 0 or log_data is None:
        return file_text
    return log_tail_text(log_data)


def make_termination_file(pod_dir: str, container: str) -> str:
    """A fresh, empty file for one container start to write its termination message in
    (mounted at its terminationMessagePath): writable by any user the container runs as."""
    directory = os.path.join(pod_dir, "containers", container)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, uuid.uuid4().hex[:8])
    with open(path, "wb"):
        pass
    os.chmod(path, 0o666)
    return path


def read_termination_message(path: str, policy: str, exit_code: int, log_path: str) -> str:
    """A finished container's termination message, read from the node's files."""
    try:
        with open(path, "rb") as f:
            text = f.read(TERMINATION_MESSAGE_BYTES).decode(errors="replace")
    except OSError:
        text = ""
    log_data = None
    if not text and policy == "FallbackToLogsOnError" and exit_code != 0 and log_path:
        try:
            with open(log_path, "rb") as f:
                # 80 lines rarely need more than this; the first, cut line is dropped.
                size = f.seek(0, os.SEEK_END)
                f.seek(max(size - 64 * 1024, 0))
                log_data = f.read()
                if size > 64 * 1024:
                    log_data = log_data[log_data.find(b"\n") + 1:]
        except OSError:
            log_data = None
    return termination_message(text, policy, exit_code, log_data)
