"""Snapshots of a server's store: what `kyb snapshot save|list|delete|restore` and the
server's scheduled snapshots make, keep, prune and restore.

A snapshot is one uncompressed tar file (0600, in a 0700 directory, by default
``<data-dir>/snapshots``) holding everything a restore into a fresh data dir needs:

- ``snapshot.json`` (first): the format, the backend (sqlite or etcd), when, the store's
  revision, and the size and sha256 of the database member;
- ``state.db`` (SQLite: an online backup through SQLite's backup API in one step, that is
  one WAL read transaction: consistent, and the server's writer is never blocked) or
  ``etcd.db`` (etcd's Maintenance.Snapshot stream as `etcdctl snapshot save` writes it,
  etcd's own trailing sha256 checked);
- ``pki/...``: the cluster CA and its key, the service-account signing keys, the admin
  credentials and static tokens: without them the restored cluster would issue a new CA
  and every kubeconfig and ServiceAccount token would stop working. ``pki/etcd`` (an
  embedded member's own transport CA) is left out: a restored member is a new
  one-member cluster and gets its own;
- ``encryption-config.yaml``: the keys Secrets are encrypted with at rest; without them
  the restored Secrets could not be read;
- ``token``: the server token, which seals the CA and keys kept in an etcd store (see
  storage/bootstrapdata.py): the restored server opens them with it.

So a snapshot is as secret as the data dir: the bundle and every key in it are 0600.

Pure functions decide (names, which snapshots retention prunes, when a schedule fires,
which members a bundle may hold); the rest is thin I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("kybernetes.snapshots")

FORMAT = 1
MANIFEST = "snapshot.json"
SQLITE_DB = "state.db"
ETCD_DB = "etcd.db"
ENCRYPTION_CONFIG = "encryption-config.yaml"
SERVER_TOKEN = "token"  # the server token that seals the bootstrap data kept in an etcd store
MEMBER_NAME = "etcd-name"
DATASTORE_RECORD = "datastore.json"
SNAPSHOT_DIR = "snapshots"
ON_DEMAND_NAME = "on-demand"
SCHEDULED_NAME = "scheduled"
SUFFIX = ".tar"
# k3s' default for embedded etcd: twice a day, the newest five kept.
DEFAULT_SCHEDULE = "0 */12 * * *"
DEFAULT_RETENTION = 5
ETCD_HASH_LEN = 32  # etcd appends the sha256 of the database to its snapshot stream
DIR_MODE = 0o700
FILE_MODE = 0o600

Backend = Literal["sqlite", "etcd"]


class SnapshotError(Exception):
    """A snapshot could not be taken, read or restored (the message says why)."""


# -- names and retention ------------------------------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FILE_RE = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)\.tar$")


def check_name(name: str) -> str:
    """`name` if it can start a snapshot's file name; ValueError otherwise."""
    if not _NAME_RE.match(name):
        raise ValueError(f"{name!r}: want letters, digits, '.', '_' or '-' (at most 100), no '/'")
    return name


def snapshot_file_name(name: str, node: str, when: dt.datetime) -> str:
    """`<name>-<node>-<UTC time to the millisecond>.tar`: sorts by time within a prefix."""
    t = when.astimezone(dt.UTC)
    return f"{name}-{node}-{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}Z{SUFFIX}"


@dataclass(frozen=True)
class SnapshotName:
    file: str
    prefix: str  # name-node
    taken: dt.datetime


def parse_file_name(file: str) -> SnapshotName | None:
    """The parts of a snapshot's file name, None for any other file."""
    m = _FILE_RE.match(file)
    if m is None:
        return None
    try:
        taken = dt.datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return SnapshotName(file, m["prefix"], taken)


def to_prune(files: Iterable[str], prefix: str, keep: int) -> list[str]:
    """The snapshots retention removes: those of `prefix` beyond the newest `keep`.
    Others (on-demand ones, another server's) are never pruned."""
    ours = sorted((n for n in map(parse_file_name, files) if n is not None and n.prefix == prefix),
                  key=lambda n: (n.taken, n.file), reverse=True)
    return [n.file for n in ours[max(keep, 0):]]


def newest(files: Iterable[str], prefix: str) -> dt.datetime | None:
    times = [n.taken for n in map(parse_file_name, files) if n is not None and n.prefix == prefix]
    return max(times, default=None)


# -- schedules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    seconds: int


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week), in UTC."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month was *
    any_weekday: bool  # day-of-week was *


Schedule = Interval | Cron

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_OFF = ("", "off", "none", "0")


def parse_duration(text: str) -> int:
    """Seconds of `1d`, `12h`, `1h30m`, `90s`...; ValueError otherwise."""
    m = _DURATION_RE.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"{text!r}: want a duration like 12h, 30m, 1h30m or 45s")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    if seconds < 1:
        raise ValueError(f"{text!r}: want at least 1s")
    return seconds


def _cron_field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        try:
            step = int(step_s) if step_s else 1
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a_s, b_s = rng.split("-", 1)
                a, b = int(a_s), int(b_s)
            else:
                a = int(rng)
                b = hi if step_s else a
        except ValueError:
            raise ValueError(f"{name} {part!r}: want *, N, N-M, */S or N-M/S") from None
        if step < 1 or not lo <= a <= b <= hi:
            raise ValueError(f"{name} {part!r}: want values from {lo} to {hi} (and a step of at least 1)")
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse_cron(text: str) -> Cron:
    expr = _MACROS.get(text.strip().lower(), text)
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{text!r}: want 5 cron fields (minute hour day-of-month month day-of-week), "
                         "an @hourly/@daily/... macro, or an interval like 12h")
    sets = [_cron_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    cron = Cron(sets[0], sets[1], sets[2], sets[3], weekdays, fields[2] == "*", fields[4] == "*")
    next_cron(cron, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # e.g. "0 0 31 2 *" never fires
    return cron


def parse_schedule(text: str) -> Schedule | None:
    """`--snapshot-schedule`: a cron expression, a macro, `@every 6h` or a bare interval
    (`6h`); None for off ("", off, none, 0). ValueError says what is wrong."""
    t = text.strip()
    if t.lower() in _OFF:
        return None
    if t.lower().startswith("@every "):
        return Interval(parse_duration(t[len("@every "):]))
    if _DURATION_RE.match(t):
        return Interval(parse_duration(t))
    return parse_cron(t)


def _day_matches(c: Cron, t: dt.datetime) -> bool:
    dom = t.day in c.days
    dow = (t.weekday() + 1) % 7 in c.weekdays
    # cron's rule: with both fields restricted, either one matching is enough.
    if c.any_day or c.any_weekday:
        return dom and dow
    return dom or dow


def next_cron(c: Cron, after: dt.datetime) -> dt.datetime:
    """The first minute strictly after `after` that `c` matches (UTC)."""
    t = after.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    limit = t + dt.timedelta(days=366 * 5)
    while t < limit:
        if t.month not in c.months:
            t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
        elif not _day_matches(c, t):
            t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
        elif t.hour not in c.hours:
            t = t.replace(minute=0) + dt.timedelta(hours=1)
        elif t.minute not in c.minutes:
            t += dt.timedelta(minutes=1)
        else:
            return t
    raise ValueError("the cron expression never fires")


def next_run(schedule: Schedule, now: dt.datetime, last: dt.datetime | None) -> dt.datetime:
    """When the next scheduled snapshot is due. An interval counts from the newest
    scheduled snapshot on disk (so a restarted server keeps its rhythm; one overdue
    runs now), a cron expression from now."""
    if isinstance(schedule, Interval):
        if last is None:
            return now + dt.timedelta(seconds=schedule.seconds)
        return max(now, last + dt.timedelta(seconds=schedule.seconds))
    return next_cron(schedule, now)


@dataclass(frozen=True)
class SnapshotPolicy:
    schedule: Schedule
    retention: int
    directory: str  # "" = <data-dir>/snapshots
    text: str = ""


def choose_policy(schedule: str | None, retention: int, directory: str, datastore: str) -> SnapshotPolicy | None:
    """The server's scheduled snapshots. Not given: on for an embedded etcd member (as k3s:
    a member's data dir is the cluster, and there is no other copy of it to go back to), off
    for SQLite (one file the operator backs up like any other) and for an external etcd
    (its operator's to back up). ValueError for a bad schedule."""
    if schedule is None:
        if datastore != "embedded-etcd":
            return None
        schedule = DEFAULT_SCHEDULE
    parsed = parse_schedule(schedule)
    if parsed is None:
        return None
    if retention < 1:
        raise ValueError("--snapshot-retention: want at least 1")
    return SnapshotPolicy(parsed, retention, directory, schedule)


# -- bundles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    backend: Backend
    created: str
    revision: int
    db: str
    db_size: int
    db_sha256: str
    files: tuple[str, ...] = ()
    format: int = FORMAT

    def to_json(self) -> bytes:
        return json.dumps({"format": self.format, "backend": self.backend, "created": self.created,
                           "revision": self.revision, "db": self.db, "dbSize": self.db_size,
                           "dbSha256": self.db_sha256, "files": list(self.files)}, indent=1).encode()

    @staticmethod
    def from_json(data: bytes) -> Manifest:
        try:
            d = json.loads(data)
            m = Manifest(d["backend"], d["created"], int(d["revision"]), d["db"], int(d["dbSize"]),
                         d["dbSha256"], tuple(d.get("files") or ()), int(d["format"]))
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError(f"not a kybernetes snapshot manifest: {e}") from None
        if m.format != FORMAT:
            raise SnapshotError(f"snapshot format {m.format} is not supported (this kyb reads {FORMAT})")
        if m.backend not in ("sqlite", "etcd") or m.db != {"sqlite": SQLITE_DB, "etcd": ETCD_DB}[m.backend]:
            raise SnapshotError(f"snapshot of an unknown backend {m.backend!r} ({m.db!r})")
        return m


def member_allowed(name: str) -> bool:
    """Whether a bundle may hold `name`: what restore writes, never a path that leaves the
    data dir, nothing under pki/etcd (a restored member gets its own CA)."""
    if name in (MANIFEST, SQLITE_DB, ETCD_DB, ENCRYPTION_CONFIG, SERVER_TOKEN):
        return True
    parts = name.split("/")
    return (len(parts) >= 2 and parts[0] == "pki" and parts[1] != "etcd"
            and all(p and p not in (".", "..") for p in parts))


def bundle_files(data_dir: str, encryption_config: str = "") -> list[tuple[str, str]]:
    """(name in the bundle, path) of the data dir's files a restore needs besides the data."""
    out: list[tuple[str, str]] = []
    pki = os.path.join(data_dir, "pki")
    for root, dirs, files in os.walk(pki):
        rel_root = os.path.relpath(root, data_dir)
        dirs[:] = sorted(d for d in dirs if not (rel_root == "pki" and d == "etcd"))
        for f in sorted(files):
            path = os.path.join(root, f)
            if os.path.isfile(path) and not os.path.islink(path):
                out.append((os.path.join(rel_root, f).replace(os.sep, "/"), path))
    enc = encryption_config or os.path.join(data_dir, ENCRYPTION_CONFIG)
    if os.path.isfile(enc):
        out.append((ENCRYPTION_CONFIG, enc))
    token = os.path.join(data_dir, SERVER_TOKEN)
    if os.path.isfile(token):
        out.append((SERVER_TOKEN, token))
    return out


def _private_dir(path: str) -> None:
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = FILE_MODE
    info.mtime = int(mtime)
    return info


def write_bundle(dest: str, manifest: Manifest, db_path: str, extra: list[tuple[str, str]]) -> None:
    """The tar at `dest` (0600, written beside it and renamed: no half snapshot is ever listed)."""
    part = dest + ".part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                body = manifest.to_json()
                now = dt.datetime.now(dt.UTC).timestamp()
                tar.addfile(_tarinfo(MANIFEST, len(body), now), io.BytesIO(body))
                with open(db_path, "rb") as f:
                    tar.addfile(_tarinfo(manifest.db, manifest.db_size, now), f)
                for name, path in extra:
                    with open(path, "rb") as f:
                        data = f.read()
                    tar.addfile(_tarinfo(name, len(data), now), io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(part, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


def read_manifest(path: str) -> Manifest:
    try:
        with tarfile.open(path, "r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise SnapshotError(f"{path}: no {MANIFEST} first: not a kybernetes snapshot")
            f = tar.extractfile(first)
            assert f is not None
            return Manifest.from_json(f.read(1 << 20))
    except (tarfile.TarError, OSError) as e:
        raise SnapshotError(f"{path}: {e}") from None


# -- taking snapshots ---------------------------------------------------------------------------


def sqlite_backup(db: str, dest: str) -> int:
    """A consistent copy of the SQLite store at `db` in `dest` (0600, one self-contained
    file); returns its revision. The copy is taken in one step, inside one read transaction,
    which in WAL mode never blocks the server's writer."""
    if not os.path.exists(db):
        raise SnapshotError(f"no SQLite store at {db}")
    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
    src = sqlite3.connect(db, timeout=10)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            # The copy is one file: no -wal beside it to forget.
            out.execute("PRAGMA journal_mode=DELETE")
            check = out.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise SnapshotError(f"the copy of {db} fails SQLite's check: {check}")
            row = out.execute("SELECT MAX(id) FROM kv").fetchone()
            return int(row[0] or 0)
        finally:
            out.close()
    except sqlite3.Error as e:
        raise SnapshotError(f"backing up {db}: {e}") from None
    finally:
        src.close()


def check_etcd_snapshot(size: int, expected: int, data_hash: bytes, trailer: bytes) -> None:
    """etcd sends the database (`expected` bytes, from the first response's remaining
    bytes) and then its sha256: both must match what arrived."""
    if size != expected:
        raise SnapshotError(f"etcd snapshot is {size} bytes, etcd announced {expected}")
    if trailer != data_hash:
        raise SnapshotError("etcd snapshot's sha256 does not match the data received")


async def etcd_snapshot(endpoints: list[str], dest: str, *, ca_file: str = "", cert_file: str = "",
                        key_file: str = "", timeout: float = 300.0) -> int:
    """etcd's snapshot (Maintenance.Snapshot) of the first member that answers, written to
    `dest` (0600) as etcdctl writes it (the database then its sha256); returns its size."""
    import grpc
    import grpc.aio

    from kybernetes.storage.etcd import parse_endpoint
    from kybernetes.storage.etcdpb import rpc_pb2, rpc_pb2_grpc

    def read(path: str) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    errors = []
    for endpoint in endpoints:
        target, tls = parse_endpoint(endpoint)
        if tls:
            creds = grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))
            channel = grpc.aio.secure_channel(target, creds, options=[("grpc.max_receive_message_length", -1)])
        else:
            channel = grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
        try:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as out:
                h = hashlib.sha256()
                size, expected, pending = 0, -1, b""
                async for resp in stub.Snapshot(rpc_pb2.SnapshotRequest(), timeout=timeout):
                    if expected < 0:
                        expected = resp.remaining_bytes + len(resp.blob)
                    if size < expected:
                        h.update(resp.blob)
                        size += len(resp.blob)
                    else:
                        pending += resp.blob
                    out.write(resp.blob)
                check_etcd_snapshot(size, expected, h.digest(), pending)
                out.flush()
                os.fsync(out.fileno())
            return size + len(pending)
        except grpc.aio.AioRpcError as e:
            errors.append(f"{endpoint}: {e.code().name}: {e.details()}")
        finally:
            await channel.close()
    raise SnapshotError("etcd snapshot failed: " + "; ".join(errors))


def record_datastore(data_dir: str, backend: Any) -> None:
    """Write down (0600) how the server reaches its store, so `kyb snapshot save --data-dir`
    finds an etcd member (its client URL and TLS files) without being told."""
    from kybernetes.storage.etcd import EtcdStore

    if isinstance(backend, EtcdStore):
        rec = {"kind": "etcd", "endpoints": backend.endpoints, "caFile": backend.ca_file,
               "certFile": backend.cert_file, "keyFile": backend.key_file}
    else:
        rec = {"kind": "sqlite"}
    path = os.path.join(data_dir, DATASTORE_RECORD)
    text = json.dumps(rec)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return  # as it was: nothing to write (the disk may be full; the server still starts)
    except (OSError, ValueError):
        pass
    try:
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    except OSError as e:
        # A convenience for `kyb snapshot save`, never a reason not to serve (a full disk).
        log.warning("could not record how the store is reached in %s: %s", path, e)
        with contextlib.suppress(OSError):
            os.unlink(path + ".tmp")


@dataclass(frozen=True)
class Source:
    """Where a snapshot is taken from: the SQLite file, or etcd endpoints and TLS files."""

    backend: Backend
    db: str = ""
    endpoints: tuple[str, ...] = ()
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def source_of(data_dir: str) -> Source:
    """The store of the server of `data_dir`, from what it recorded at its last start (or
    a state.db there)."""
    try:
        with open(os.path.join(data_dir, DATASTORE_RECORD)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        rec = None
    if rec and rec.get("kind") == "etcd":
        return Source("etcd", endpoints=tuple(rec["endpoints"]), ca_file=rec.get("caFile", ""),
                      cert_file=rec.get("certFile", ""), key_file=rec.get("keyFile", ""))
    db = os.path.join(data_dir, SQLITE_DB)
    if rec or os.path.exists(db):
        return Source("sqlite", db=db)
    raise SnapshotError(f"{data_dir} holds no store a server has run on (no {DATASTORE_RECORD}, no {SQLITE_DB})")


async def save(source: Source, data_dir: str, directory: str, name: str, node: str,
               encryption_config: str = "", now: dt.datetime | None = None) -> str:
    """Take a snapshot of `source` with the data dir's PKI and encryption keys into
    `directory` (made 0700); returns the file's path."""
    _private_dir(directory)
    when = now or dt.datetime.now(dt.UTC)
    dest = os.path.join(directory, snapshot_file_name(check_name(name), node, when))
    if os.path.exists(dest):
        raise SnapshotError(f"{dest} exists")
    tmp = dest + ".db"
    try:
        if source.backend == "sqlite":
            revision = await asyncio.to_thread(sqlite_backup, source.db, tmp)
            db = SQLITE_DB
        else:
            await etcd_snapshot(list(source.endpoints), tmp, ca_file=source.ca_file, cert_file=source.cert_file,
                                key_file=source.key_file)
            revision, db = 0, ETCD_DB
        digest, size = await asyncio.to_thread(_sha256_of, tmp)
        extra = bundle_files(data_dir, encryption_config)
        manifest = Manifest(source.backend, when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), revision,
                            db, size, digest, tuple(n for n, _ in extra))
        await asyncio.to_thread(write_bundle, dest, manifest, tmp, extra)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return dest


def _sha256_of(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def prune(directory: str, prefix: str, keep: int) -> list[str]:
    """Remove the snapshots of `prefix` beyond the newest `keep`; returns their names."""
    try:
        files = os.listdir(directory)
    except FileNotFoundError:
        return []
    removed = []
    for f in to_prune(files, prefix, keep):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, f))
            removed.append(f)
    return removed


@dataclass(frozen=True)
class Listed:
    file: str
    size: int
    taken: dt.datetime
    manifest: Manifest | None
    problem: str = ""


def list_snapshots(directory: str) -> list[Listed]:
    """The snapshots in `directory`, oldest first (files not named as snapshots are skipped)."""
    try:
        files = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for n in sorted(filter(None, map(parse_file_name, files)), key=lambda n: (n.taken, n.file)):
        path = os.path.join(directory, n.file)
        try:
            out.append(Listed(n.file, os.path.getsize(path), n.taken, read_manifest(path)))
        except (SnapshotError, OSError) as e:
            out.append(Listed(n.file, 0, n.taken, None, str(e)))
    return out


async def run_schedule(policy: SnapshotPolicy, source: Source, data_dir: str, node: str,
                       encryption_config: str = "") -> None:
    """The server's scheduled snapshots: one whenever the schedule says, then retention.
    A failed snapshot is logged and the next one is tried on time."""
    directory = policy.directory or os.path.join(data_dir, SNAPSHOT_DIR)
    prefix = f"{SCHEDULED_NAME}-{node}"
    while True:
        now = dt.datetime.now(dt.UTC)
        try:
            files = os.listdir(directory)
        except OSError:
            files = []
        due = next_run(policy.schedule, now, newest(files, prefix))
        await asyncio.sleep(max(0.0, (due - now).total_seconds()))
        try:
            path = await save(source, data_dir, directory, SCHEDULED_NAME, node, encryption_config)
            log.info("snapshot saved: %s", path)
            for f in await asyncio.to_thread(prune, directory, prefix, policy.retention):
                log.info("snapshot pruned (retention %d): %s", policy.retention, f)
        except Exception:  # noqa: BLE001 - a failed snapshot must not stop the server
            log.exception("scheduled snapshot failed")
            await asyncio.sleep(1.0)


# -- restoring ----------------------------------------------------------------------------------


def restore_command(db: str, member_dir: str, node: str, peer_url: str, token: str,
                    etcdctl: str = "etcdctl") -> list[str]:
    """`etcdctl snapshot restore` making a new one-member cluster of `node` at `peer_url`."""
    return [etcdctl, "snapshot", "restore", db, f"--data-dir={member_dir}", f"--name={node}",
            f"--initial-cluster={node}={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster-token={token}"]


def restore_env(environ: dict[str, str]) -> dict[str, str]:
    """etcdctl's environment: none of ours that it would read as flags, API v3."""
    env = {k: v for k, v in environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env["ETCDCTL_API"] = "3"
    return env


def restore(path: str, data_dir: str, *, node: str = "", peer_url: str = "", etcdctl: str = "etcdctl") -> Manifest:
    """A fresh data dir `data_dir` (absent or empty) from the snapshot at `path`: the store
    (SQLite: state.db; etcd: a new one-member cluster of `node` at `peer_url` under
    <data-dir>/etcd, by etcdctl), the PKI and the encryption keys. Nothing is left behind
    when it fails."""
    from kybernetes.storage.etcdmember import CLUSTER_TOKEN

    if os.path.isdir(data_dir) and os.listdir(data_dir):
        raise SnapshotError(f"{data_dir} is not empty: restore into a new data dir")
    manifest = read_manifest(path)
    if manifest.backend == "etcd" and not (node and peer_url):
        raise SnapshotError("restoring an etcd snapshot needs the member's name and peer URL")
    made = not os.path.exists(data_dir)
    _private_dir(data_dir)
    try:
        db_out = os.path.join(data_dir, SQLITE_DB if manifest.backend == "sqlite" else ".restore-etcd.db")
        _extract(path, manifest, data_dir, db_out)
        if manifest.backend == "sqlite":
            conn = sqlite3.connect(db_out)
            try:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                conn.close()
            if check != "ok":
                raise SnapshotError(f"the restored store fails SQLite's check: {check}")
        else:
            member_dir = os.path.join(data_dir, "etcd")
            r = subprocess.run(restore_command(db_out, member_dir, node, peer_url, CLUSTER_TOKEN, etcdctl),
                               capture_output=True, text=True, env=restore_env(dict(os.environ)), timeout=300)
            os.unlink(db_out)
            if r.returncode != 0:
                raise SnapshotError(f"etcdctl snapshot restore failed ({r.returncode}): "
                                    f"{(r.stderr or r.stdout).strip()[-2000:]}")
            os.chmod(member_dir, DIR_MODE)
            # The server names its member from this file: the name the member was restored with.
            fd = os.open(os.path.join(data_dir, MEMBER_NAME), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "w") as f:
                f.write(node + "\n")
    except FileNotFoundError as e:
        _undo(data_dir, made)
        raise SnapshotError(f"{e.filename}: not found (etcdctl is in Debian's etcd-client package)") from None
    except BaseException:
        _undo(data_dir, made)
        raise
    return manifest


def _undo(data_dir: str, made: bool) -> None:
    if made:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for entry in os.listdir(data_dir):
        p = os.path.join(data_dir, entry)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)


def _extract(path: str, manifest: Manifest, data_dir: str, db_out: str) -> None:
    """Write the bundle's members (only those `member_allowed`, regular files) 0600 under
    `data_dir`, the database at `db_out`, its size and sha256 checked."""
    seen_db = False
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if info.name == MANIFEST:
                continue
            if not info.isfile() or not member_allowed(info.name):
                raise SnapshotError(f"{path}: unexpected member {info.name!r}")
            is_db = info.name == manifest.db
            if not is_db and info.name in (SQLITE_DB, ETCD_DB):
                raise SnapshotError(f"{path}: unexpected member {info.name!r}")
            out = db_out if is_db else os.path.join(data_dir, *info.name.split("/"))
            _private_dir(os.path.dirname(out))
            src = tar.extractfile(info)
            assert src is not None
            h = hashlib.sha256()
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if is_db:
                seen_db = True
                if info.size != manifest.db_size or h.hexdigest() != manifest.db_sha256:
                    raise SnapshotError(f"{path}: {info.name} does not match its size and sha256 in the manifest "
                                        "(a damaged snapshot)")
    if not seen_db:
        raise SnapshotError(f"{path}: the database ({manifest.db}) is missing")
