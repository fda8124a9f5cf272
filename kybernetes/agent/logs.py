"""Container logs as `kubectl logs` shows them, read from the CRI log files the runtime
writes (one line per chunk: `TIMESTAMP STREAM TAG MESSAGE`, tag `P` for a partial line
and `F` for the end of one). Parsing and selection are pure; `follow` reads on."""

from __future__ import annotations

import asyncio
import datetime as dt
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
    for line in select(lines, opts):
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
            return
        await asyncio.sleep(poll)

