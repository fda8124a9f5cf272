"""`kyb snapshot save|list|restore` and scheduled snapshots (issue 17), on SQLite and on an
embedded etcd member, with real kubectl.

For each backend: objects are created, a snapshot is taken while the server runs, some
objects are deleted and one created, the snapshot is restored into a new data dir, and a
server started there serves exactly the snapshot's objects (the deleted ones back, the
later one absent, a Secret encrypted at rest readable, the same resourceVersions), and
the old kubeconfig's CA still verifies it. A server snapshotting every second keeps only
the newest N scheduled snapshots and never prunes an on-demand one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

from kybernetes.testing.cluster import ServerProcess, etcd_member_pids, wait_for

NS = "snap-e2e"


def port_in(lo: int, hi: int) -> int:
    """A free port of this test's own range (API 27400-27499, etcd 23300-23399)."""
    for port in range(lo, hi):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            # Not handed out twice within this module.
            if port not in _taken:
                _taken.add(port)
                return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


_taken: set[int] = set()


def kyb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def populate(srv: ServerProcess) -> dict[str, str]:
    """Objects before the snapshot; returns configmap name -> resourceVersion."""
    srv.kubectl_ok("create", "namespace", NS)
    for name in ("keep", "gone", "also-gone"):
        srv.kubectl_ok("-n", NS, "create", "configmap", name, f"--from-literal=v={name}")
    srv.kubectl_ok("-n", NS, "create", "secret", "generic", "s", "--from-literal=password=hunter2")
    items = json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "-o", "json"))["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def change_after_snapshot(srv: ServerProcess) -> None:
    srv.kubectl_ok("-n", NS, "delete", "configmap", "gone", "also-gone")
    srv.kubectl_ok("-n", NS, "delete", "secret", "s")
    srv.kubectl_ok("-n", NS, "create", "configmap", "later", "--from-literal=v=later")


def check_restored(srv: ServerProcess, before: dict[str, str]) -> None:
    items = json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "-o", "json"))["items"]
    now = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}
    assert now == before  # the deleted ones back, the later one absent, the same versions
    secret = json.loads(srv.kubectl_ok("-n", NS, "get", "secret", "s", "-o", "json"))
    assert secret["data"]["password"] == "aHVudGVyMg=="  # decrypted with the restored key
    assert NS in srv.kubectl_ok("get", "namespaces", "-o", "name")
    # A new write goes on from there.
    srv.kubectl_ok("-n", NS, "create", "configmap", "after-restore")


def save(data_dir: str, *extra: str) -> str:
    r = kyb("snapshot", "save", "--data-dir", data_dir, *extra)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    assert os.path.isfile(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    return path


def test_sqlite_snapshot_restores_every_object_and_schedule_keeps_n():
    scheduled = tempfile.mkdtemp(prefix="kyb-snap-sched-")
    srv = ServerProcess(port=port_in(27400, 27500),
                        extra_args=["--disable-scheduler", "--disable-controllers", "--snapshot-schedule", "1s",
                                    "--snapshot-retention", "2", "--snapshot-dir", scheduled])
    restored_parent = tempfile.mkdtemp(prefix="kyb-snap-restore-")
    new_dir = os.path.join(restored_parent, "data")
    restored = ServerProcess(data_dir=new_dir, port=port_in(27400, 27500),
                             extra_args=["--disable-scheduler", "--disable-controllers"])
    try:
        srv.start(timeout=60)
        before = populate(srv)
        path = save(srv.data_dir)
        listed = kyb("snapshot", "list", "--data-dir", srv.data_dir)
        assert listed.returncode == 0 and os.path.basename(path) in listed.stdout and "sqlite" in listed.stdout
        change_after_snapshot(srv)

        r = kyb("snapshot", "restore", path, "--data-dir", new_dir)
        assert r.returncode == 0, r.stderr
        # Never over a data dir in use.
        r = kyb("snapshot", "restore", path, "--data-dir", srv.data_dir)
        assert r.returncode != 0 and "not empty" in r.stderr
        restored.start(timeout=60)
        check_restored(restored, before)
        # The restored CA is the old one: the old admin kubeconfig verifies the new server.
        r = restored.kubectl("--kubeconfig", srv.kubeconfig, "--server", restored.url, "get", "ns", NS)
        assert r.ok, r.stderr

        # Retention: the server snapshots every second and keeps the newest two scheduled
        # ones; an on-demand snapshot in the same directory stays.
        manual = os.path.basename(save(srv.data_dir, "--dir", scheduled))
        seen: set[str] = set()

        def pruned_enough() -> bool:
            now = {f for f in os.listdir(scheduled) if f.startswith("scheduled-") and f.endswith(".tar")}
            seen.update(now)
            return len(seen) >= 4 and len(now) <= 2

        wait_for(pruned_enough, timeout=30, what="four scheduled snapshots, two kept")
        assert manual in os.listdir(scheduled)
        assert kyb("snapshot", "delete", "--dir", scheduled, manual).returncode == 0
        assert manual not in os.listdir(scheduled)
    finally:
        restored.cleanup()
        srv.cleanup()
        shutil.rmtree(scheduled, ignore_errors=True)
        shutil.rmtree(restored_parent, ignore_errors=True)


@pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("etcdctl") is None, reason="no etcd/etcdctl")
def test_etcd_snapshot_restores_into_a_new_one_member_cluster():
    def etcd_args() -> tuple[list[str], int]:
        client, peer = port_in(23300, 23400), port_in(23300, 23400)
        return ["--cluster-init", "--etcd-client-port", str(client), "--etcd-peer-port", str(peer),
                "--disable-scheduler", "--disable-controllers", "--snapshot-schedule", "off"], peer

    args, _ = etcd_args()
    srv = ServerProcess(port=port_in(27400, 27500), extra_args=args)
    restored_parent = tempfile.mkdtemp(prefix="kyb-snap-restore-")
    new_dir = os.path.join(restored_parent, "data")
    new_args, new_peer = etcd_args()
    restored = ServerProcess(data_dir=new_dir, port=port_in(27400, 27500), extra_args=new_args)
    try:
        srv.start(timeout=60)
        before = populate(srv)
        path = save(srv.data_dir)
        listed = kyb("snapshot", "list", "--data-dir", srv.data_dir)
        assert "etcd" in listed.stdout, listed.stdout
        change_after_snapshot(srv)

        r = kyb("snapshot", "restore", path, "--data-dir", new_dir, "--etcd-peer-port", str(new_peer))
        assert r.returncode == 0, r.stderr
        assert os.path.isdir(os.path.join(new_dir, "etcd", "member"))
        assert stat.S_IMODE(os.stat(os.path.join(new_dir, "etcd")).st_mode) == 0o700
        restored.start(timeout=90)
        check_restored(restored, before)
        # The old cluster is untouched by the new one (its own member, its own data).
        assert "later" in srv.kubectl_ok("-n", NS, "get", "cm", "-o", "name")
    finally:
        restored.stop()
        srv.stop()
        wait_for(lambda: not etcd_member_pids(srv.data_dir) and not etcd_member_pids(new_dir), timeout=20,
                 what="the etcd members to exit")
        restored.cleanup()
        srv.cleanup()
        shutil.rmtree(restored_parent, ignore_errors=True)
