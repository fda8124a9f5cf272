"""Snapshot decisions (names, retention, schedules, what a bundle may hold) and a SQLite
snapshot's round trip through save and restore, without a server."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import stat
import tarfile

import pytest

from kybernetes.storage import snapshots as snap

UTC = dt.UTC


def t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


# -- names and retention -------------------------------------------------------------------------


def test_file_names_carry_the_time_and_parse_back():
    name = snap.snapshot_file_name("on-demand", "host-a", t("2026-12-06T20:31:21.123456"))
    assert name == "on-demand-host-a-20261206T203121.123Z.tar"
    parsed = snap.parse_file_name(name)
    assert parsed is not None and parsed.prefix == "on-demand-host-a"
    assert parsed.taken == t("2026-12-06T20:31:21.123")
    assert snap.parse_file_name("notes.txt") is None
    assert snap.parse_file_name("x-20261306T203121.123Z.tar") is None  # month 13


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "-x", "a b", "x" * 101])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError):
        snap.check_name(bad)


def test_retention_prunes_only_the_oldest_of_its_own_prefix():
    base = t("2026-12-06T00:00:00")
    files = [snap.snapshot_file_name("scheduled", "n1", base + dt.timedelta(hours=h)) for h in range(6)]
    others = [snap.snapshot_file_name("on-demand", "n1", base), snap.snapshot_file_name("scheduled", "n2", base),
              "README"]
    pruned = snap.to_prune(files + others, "scheduled-n1", 2)
    assert sorted(pruned) == sorted(files[:4])
    assert snap.to_prune(files, "scheduled-n1", 10) == []
    assert snap.newest(files + others, "scheduled-n1") == base + dt.timedelta(hours=5)
    assert snap.newest(others, "scheduled-n9") is None


# -- schedules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("12h", 43200), ("1h30m", 5400), ("45s", 45), ("@every 2d", 172800),
                                               ("90m", 5400)])
def test_intervals(text, seconds):
    assert snap.parse_schedule(text) == snap.Interval(seconds)


@pytest.mark.parametrize("text", ["", "off", "none", "0", " OFF "])
def test_off(text):
    assert snap.parse_schedule(text) is None


@pytest.mark.parametrize("text", ["0 */12 * *", "60 * * * *", "* 24 * * *", "0 0 31 2 *", "*/0 * * * *",
                                  "a * * * *", "5-1 * * * *", "@every 0s", "@fortnightly", "12x"])
def test_bad_schedules_say_so(text):
    with pytest.raises(ValueError):
        snap.parse_schedule(text)


def test_cron_next_times():
    every12 = snap.parse_schedule("0 */12 * * *")
    assert isinstance(every12, snap.Cron)
    assert snap.next_cron(every12, t("2026-12-06T20:31:00")) == t("2026-12-07T00:00:00")
    assert snap.next_cron(every12, t("2026-12-07T00:00:00")) == t("2026-12-07T12:00:00")
    # Mondays at 03:15, across a month and a year end.
    monday = snap.parse_schedule("15 3 * * 1")
    assert snap.next_cron(monday, t("2026-12-29T04:00:00")) == t("2027-01-04T03:15:00")
    # Both day fields restricted: either matches (the 1st, or any Friday).
    either = snap.parse_schedule("0 0 1 * 5")
    assert snap.next_cron(either, t("2026-12-06T00:00:00")) == t("2026-12-11T00:00:00")
    assert snap.next_cron(either, t("2026-12-26T00:00:00")) == t("2027-01-01T00:00:00")
    # Sunday as 7, lists and ranges with steps, in months named by number.
    assert snap.parse_schedule("0 0 * * 7") == snap.parse_schedule("0 0 * * 0")
    stepped = snap.parse_schedule("10-50/20,5 1 * 2 *")
    assert snap.next_cron(stepped, t("2026-12-06T00:00:00")) == t("2027-02-01T01:05:00")
    assert snap.next_cron(stepped, t("2027-02-01T01:05:00")) == t("2027-02-01T01:10:00")
    assert snap.parse_schedule("@daily") == snap.parse_schedule("0 0 * * *")


def test_interval_counts_from_the_last_snapshot():
    every = snap.Interval(3600)
    now = t("2026-12-06T12:00:00")
    assert snap.next_run(every, now, None) == t("2026-12-06T13:00:00")
    assert snap.next_run(every, now, t("2026-12-06T11:30:00")) == t("2026-12-06T12:30:00")
    assert snap.next_run(every, now, t("2026-12-06T08:00:00")) == now  # overdue: now


def test_policy_defaults_follow_k3s():
    on_etcd = snap.choose_policy(None, 5, "", "embedded-etcd")
    assert on_etcd is not None and on_etcd.retention == 5
    assert on_etcd.schedule == snap.parse_schedule("0 */12 * * *")
    assert snap.choose_policy(None, 5, "", "sqlite") is None
    assert snap.choose_policy(None, 5, "", "external-etcd") is None
    assert snap.choose_policy("off", 5, "", "embedded-etcd") is None
    assert snap.choose_policy("2s", 3, "/x", "sqlite") == snap.SnapshotPolicy(snap.Interval(2), 3, "/x", "2s")
    with pytest.raises(ValueError):
        snap.choose_policy("2s", 0, "", "sqlite")


# -- bundles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "ok"), [
    ("snapshot.json", True), ("state.db", True), ("etcd.db", True), ("encryption-config.yaml", True),
    ("token", True), ("pki/ca.key", True), ("pki/sub/x.crt", True),
    ("pki/etcd/ca.key", False), ("pki", False), ("pki/../state.db", False), ("/etc/passwd", False),
    ("../x", False), ("kubeconfig.yaml", False), ("pki//x", False)])
def test_members_a_bundle_may_hold(name, ok):
    assert snap.member_allowed(name) is ok


def test_etcd_stream_check():
    data = b"x" * 100
    digest = hashlib.sha256(data).digest()
    snap.check_etcd_snapshot(100, 100, digest, digest)
    with pytest.raises(snap.SnapshotError, match="bytes"):
        snap.check_etcd_snapshot(99, 100, digest, digest)
    with pytest.raises(snap.SnapshotError, match="sha256"):
        snap.check_etcd_snapshot(100, 100, digest, b"\0" * 32)


def _make_store(data_dir: str, rows: int) -> str:
    db = os.path.join(data_dir, "state.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, value BLOB)")
    conn.executemany("INSERT INTO kv (name, value) VALUES (?, ?)", [(f"/k/{i}", b"v") for i in range(rows)])
    conn.commit()
    conn.close()
    return db


def _data_dir(tmp_path) -> str:
    d = str(tmp_path / "data")
    os.makedirs(os.path.join(d, "pki", "etcd"))
    for rel, body in (("pki/ca.key", b"CAKEY"), ("pki/ca.crt", b"CACERT"), ("pki/etcd/ca.key", b"ETCDKEY"),
                      ("encryption-config.yaml", b"keys"), ("token", b"K10tok"), ("kubeconfig.yaml", b"x")):
        with open(os.path.join(d, rel), "wb") as f:
            f.write(body)
    _make_store(d, 10)
    return d


async def test_sqlite_snapshot_round_trip(tmp_path):
    data = _data_dir(tmp_path)
    out_dir = str(tmp_path / "snaps")
    # A reader of the live store (as the server's) does not stop the copy.
    live = sqlite3.connect(os.path.join(data, "state.db"))
    live.execute("BEGIN")
    live.execute("SELECT COUNT(*) FROM kv").fetchone()
    path = await snap.save(snap.source_of(data), data, out_dir, "on-demand", "n1")
    live.rollback()
    live.close()
    assert stat.S_IMODE(os.stat(out_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    m = snap.read_manifest(path)
    assert (m.backend, m.revision, m.db) == ("sqlite", 10, "state.db")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert all(i.mode == 0o600 for i in tar.getmembers())
    assert names[0] == "snapshot.json"
    assert set(names) == {"snapshot.json", "state.db", "pki/ca.crt", "pki/ca.key", "encryption-config.yaml", "token"}
    assert [s.file for s in snap.list_snapshots(out_dir)] == [os.path.basename(path)]

    new = str(tmp_path / "restored")
    assert snap.restore(path, new).backend == "sqlite"
    conn = sqlite3.connect(os.path.join(new, "state.db"))
    assert conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 10
    conn.close()
    with open(os.path.join(new, "pki", "ca.key"), "rb") as f:
        assert f.read() == b"CAKEY"
    assert stat.S_IMODE(os.stat(os.path.join(new, "pki", "ca.key")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o700
    assert not os.path.exists(os.path.join(new, "pki", "etcd"))
    # Never over an existing data dir.
    with pytest.raises(snap.SnapshotError, match="not empty"):
        snap.restore(path, new)


async def test_a_damaged_snapshot_restores_nothing(tmp_path):
    data = _data_dir(tmp_path)
    path = await snap.save(snap.source_of(data), data, str(tmp_path / "s"), "x", "n1")
    with tarfile.open(path) as tar:
        offset = tar.getmember("state.db").offset_data
    with open(path, "r+b") as f:
        f.seek(offset + 200)
        f.write(b"\xff\xfe")
    new = str(tmp_path / "restored")
    with pytest.raises(snap.SnapshotError, match="damaged"):
        snap.restore(path, new)
    assert not os.path.exists(new)


def test_prune_removes_files(tmp_path):
    d = str(tmp_path)
    base = t("2026-12-06T00:00:00")
    files = [snap.snapshot_file_name("scheduled", "n", base + dt.timedelta(minutes=i)) for i in range(4)]
    for f in files:
        open(os.path.join(d, f), "w").close()
    assert sorted(snap.prune(d, "scheduled-n", 1)) == sorted(files[:3])
    assert os.listdir(d) == [files[3]]


def test_etcd_restore_makes_a_new_one_member_cluster():
    cmd = snap.restore_command("/d/x.db", "/d/etcd", "host-a", "https://10.0.0.5:2380", "kybernetes")
    assert cmd == ["etcdctl", "snapshot", "restore", "/d/x.db", "--data-dir=/d/etcd", "--name=host-a",
                   "--initial-cluster=host-a=https://10.0.0.5:2380",
                   "--initial-advertise-peer-urls=https://10.0.0.5:2380", "--initial-cluster-token=kybernetes"]
    env = snap.restore_env({"PATH": "/bin", "ETCDCTL_ENDPOINTS": "x", "ETCD_NAME": "y", "ETCDCTL_API": "2"})
    assert env == {"PATH": "/bin", "ETCDCTL_API": "3"}


def test_restoring_an_etcd_snapshot_needs_the_member(tmp_path):
    m = snap.Manifest("etcd", "2026-12-06T00:00:00Z", 0, "etcd.db", 1, "00")
    path = str(tmp_path / "e.tar")
    db = str(tmp_path / "db")
    with open(db, "wb") as f:
        f.write(b"x")
    snap.write_bundle(path, m, db, [])
    with pytest.raises(snap.SnapshotError, match="peer URL"):
        snap.restore(path, str(tmp_path / "new"))
    assert not os.path.exists(tmp_path / "new")


def test_the_server_record_says_where_its_store_is(tmp_path):
    from kybernetes.storage.etcd import EtcdStore

    d = str(tmp_path)
    with pytest.raises(snap.SnapshotError, match="no store"):
        snap.source_of(d)
    snap.record_datastore(d, EtcdStore(["https://127.0.0.1:23999"], ca_file="/c", cert_file="/e", key_file="/k"))
    assert stat.S_IMODE(os.stat(os.path.join(d, "datastore.json")).st_mode) == 0o600
    assert snap.source_of(d) == snap.Source("etcd", endpoints=("https://127.0.0.1:23999",), ca_file="/c",
                                            cert_file="/e", key_file="/k")
    snap.record_datastore(d, object())
    assert snap.source_of(d) == snap.Source("sqlite", db=os.path.join(d, "state.db"))


def test_a_full_disk_never_keeps_the_server_from_recording_or_starting(tmp_path, monkeypatch):
    d = str(tmp_path)
    snap.record_datastore(d, object())
    real_open = os.open

    def full(path, *args, **kwargs):
        if str(path).startswith(d):
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", full)
    snap.record_datastore(d, object())  # unchanged: nothing to write
    from kybernetes.storage.etcd import EtcdStore

    snap.record_datastore(d, EtcdStore(["https://127.0.0.1:23999"]))  # changed, cannot be written: no raise
    monkeypatch.setattr(os, "open", real_open)
    assert snap.source_of(d) == snap.Source("sqlite", db=os.path.join(d, "state.db"))
    assert not os.path.exists(os.path.join(d, "datastore.json.tmp"))
