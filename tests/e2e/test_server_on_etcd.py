"""`kyb server --cluster-init` (issue 17): the cluster in an embedded etcd member, driven by real kubectl.

One server on a fresh data dir, with its own etcd ports so it runs beside other clusters:
objects are created, read, watched and deleted; the member's keys and data stay private; a
server killed with -9 takes its member with it, and started again on the same data dir it
finds every object, with resourceVersions that keep increasing; no etcd outlives the server.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import threading

import pytest

from kybernetes.testing.cluster import ServerProcess, etcd_member_pids, free_port, wait_for

NS = "etcd-e2e"


def configmap(name: str, value: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
                       "data": {"v": value}})


@pytest.fixture(scope="module")
def srv():
    s = ServerProcess(extra_args=["--cluster-init", "--etcd-client-port", str(free_port()),
                                  "--etcd-peer-port", str(free_port()), "--disable-scheduler"])
    try:
        s.start(timeout=60)
        s.kubectl_ok("create", "namespace", NS)
        yield s
    finally:
        s.stop()
        # A member still running here fails the module (in teardown): nothing may outlive it.
        wait_for(lambda: not etcd_member_pids(s.data_dir), timeout=20, what="the etcd member to exit")
        s.cleanup()


def test_the_server_runs_on_its_member_not_sqlite(srv):
    assert len(etcd_member_pids(srv.data_dir)) == 1
    assert not os.path.exists(os.path.join(srv.data_dir, "state.db"))
    assert os.path.isdir(os.path.join(srv.data_dir, "etcd", "member"))
    assert srv.kubectl_ok("get", "--raw", "/readyz") == "ok"


def test_objects_are_created_read_and_deleted(srv):
    srv.kubectl_ok("apply", "-f", "-", stdin=configmap("a", "1"))
    srv.kubectl_ok("apply", "-f", "-", stdin=configmap("b", "2"))
    assert json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "a", "-o", "json"))["data"] == {"v": "1"}
    names = {i["metadata"]["name"] for i in json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "-o", "json"))["items"]}
    assert {"a", "b"} <= names
    srv.kubectl_ok("-n", NS, "delete", "cm", "b")
    r = srv.kubectl("-n", NS, "get", "cm", "b")
    assert r.returncode != 0 and "NotFound" in r.stderr
    # A precondition on a stale resourceVersion is refused, as etcd's transaction says.
    stale = json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "a", "-o", "json"))
    srv.kubectl_ok("-n", NS, "patch", "cm", "a", "-p", '{"data":{"v":"1b"}}')
    stale["data"] = {"v": "lost"}
    r = srv.kubectl("replace", "-f", "-", stdin=json.dumps(stale))
    assert r.returncode != 0 and "modified" in r.stderr


def test_a_watch_sees_a_change(srv):
    w = srv.kubectl_background("-n", NS, "get", "cm", "a", "--watch-only", "--output-watch-events", "-o", "json")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in w.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        tries = iter(range(1000))

        def modified() -> bool:
            # A new value each time: a patch that changes nothing makes no event, and the first
            # may land before kubectl's watch has begun.
            value = f"watched-{next(tries)}"
            srv.kubectl_ok("-n", NS, "patch", "cm", "a", "-p", json.dumps({"data": {"v": value}}))
            try:
                while True:
                    if f'"{value}"' in lines.get(timeout=1):
                        return True
            except queue.Empty:
                return False
        wait_for(modified, timeout=30, interval=0, what="the watch to report the patch")
    finally:
        w.terminate()
        w.wait(10)


def test_the_member_keeps_its_keys_and_data_private(srv):
    pki = os.path.join(srv.data_dir, "pki", "etcd")
    keys = [f for f in os.listdir(pki) if f.endswith(".key")]
    assert {"ca.key", "server.key", "peer.key", "apiserver-etcd-client.key"} <= set(keys)
    for f in keys:
        assert stat.S_IMODE(os.stat(os.path.join(pki, f)).st_mode) == 0o600, f
    assert stat.S_IMODE(os.stat(os.path.join(srv.data_dir, "etcd")).st_mode) == 0o700


def test_kill_9_takes_the_member_along_and_a_restart_finds_every_object(srv):
    before = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"])
              for i in json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "-o", "json"))["items"]}
    assert "a" in before
    [member] = etcd_member_pids(srv.data_dir)
    srv.kill9()
    wait_for(lambda: not etcd_member_pids(srv.data_dir), timeout=20, what="the member to die with its server")
    srv.start(timeout=60)
    assert etcd_member_pids(srv.data_dir) not in ([], [member])
    after = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"])
             for i in json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "-o", "json"))["items"]}
    # Every object is back at its revision (the namespace's kube-root-ca.crt may have been
    # published since `before` was read: it is a controller's, not lost or invented).
    assert {name: after.get(name) for name in before} == before
    assert set(after) - set(before) <= {"kube-root-ca.crt"}
    assert "etcd member restarted on its data" in srv.log_tail(20000)
    srv.kubectl_ok("apply", "-f", "-", stdin=configmap("c", "3"))
    created = int(json.loads(srv.kubectl_ok("-n", NS, "get", "cm", "c", "-o", "json"))["metadata"]["resourceVersion"])
    assert created > max(before.values())


def test_stopping_the_server_stops_its_member(srv):
    [member] = etcd_member_pids(srv.data_dir)
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(30)
    wait_for(lambda: not etcd_member_pids(srv.data_dir), timeout=20, what="the member to stop with its server")
    assert not os.path.exists(f"/proc/{member}")
