"""Servers joining servers on embedded etcd (issue 17): `kyb server --server URL --token T`.

Three servers on this machine (own API and etcd ports, own data dirs, advertised on
127.0.0.1): the first founds the cluster (--cluster-init), two join with its token. They
share one CA and one store; with the first killed (-9, its member with it) the other two
keep reading and writing; the first comes back on its data dir and sees those writes. A
join with a wrong token is refused; a server on the same etcd by --datastore-endpoint takes
the cluster's CA with the token and is refused without it; `kyb etcd remove-member` takes a
server's member out, and so does deleting its Node (as in k3s).
No etcd outlives the module.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request

import pytest

from kybernetes.testing.cluster import ServerProcess, etcd_member_pids, wait_for

NS = "join-e2e"
# Issue 17's ranges for this test: API 264xx, etcd 223xx.
API_PORTS = (26451, 26452, 26453, 26454)
CLIENT_PORTS = (22351, 22353, 22355, 22357)
PEER_PORTS = (22352, 22354, 22356, 22358)


def configmap(name: str, value: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
                       "data": {"v": value}})


def server(i: int, *extra: str) -> ServerProcess:
    return ServerProcess(port=API_PORTS[i], extra_args=[
        "--advertise-address", "127.0.0.1", "--etcd-client-port", str(CLIENT_PORTS[i]),
        "--etcd-peer-port", str(PEER_PORTS[i]), "--disable-scheduler", "--disable-controllers", *extra])


def kyb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli.main", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def servers():
    first = server(0, "--cluster-init")
    started: list[ServerProcess] = [first]
    try:
        first.start(timeout=60)
        with open(os.path.join(first.data_dir, "token"), encoding="utf-8") as f:
            token = f.read().strip()
        for i in (1, 2):
            s = server(i, "--server", first.url, "--token", token)
            started.append(s)
            s.start(timeout=60)
        yield started, token
    finally:
        for s in started:
            s.stop()
        for s in started:
            wait_for(lambda s=s: not etcd_member_pids(s.data_dir), timeout=20, what="every etcd member to exit")
        for s in started:
            s.cleanup()


def test_the_token_is_private_and_pins_the_ca(servers):
    (first, *_), token = servers
    assert token.startswith("K10") and "::server:" in token
    path = os.path.join(first.data_dir, "token")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_joined_servers_share_the_ca_and_the_store(servers):
    (first, second, third), _ = servers
    def read(s: ServerProcess, rel: str) -> bytes:
        with open(os.path.join(s.data_dir, rel), "rb") as f:
            return f.read()
    for rel in ("pki/ca.crt", "pki/ca.key", "pki/sa.key", "pki/etcd/ca.crt", "encryption-config.yaml"):
        assert read(first, rel) == read(second, rel) == read(third, rel), rel
    # Each server's member is its own process on its own data.
    assert all(len(etcd_member_pids(s.data_dir)) == 1 for s in (first, second, third))
    first.kubectl_ok("create", "namespace", NS)
    first.kubectl_ok("apply", "-f", "-", stdin=configmap("from-first", "1"))
    for s in (second, third):
        got = json.loads(s.kubectl_ok("-n", NS, "get", "cm", "from-first", "-o", "json"))
        assert got["data"] == {"v": "1"}
    # One admin credential works on every server (the shared CA signed each admin cert).
    r = first.kubectl("--server", second.url, "-n", NS, "get", "cm", "from-first")
    assert r.ok, r.stderr
    listed = kyb("etcd", "member-list", "--data-dir", first.data_dir, "--etcd-client-port", str(CLIENT_PORTS[0]))
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == 3
    # Each joiner came in as a learner (no vote until caught up) and was promoted.
    assert "learner" not in listed.stdout and listed.stdout.count("\tvoter\t") == 3
    for s in (second, third):
        assert "promoted to a voting member" in s.log_tail(20000)
    assert all(f"127.0.0.1:{p}" in listed.stdout for p in PEER_PORTS[:3])


def test_a_join_with_a_wrong_token_is_refused(servers):
    (first, *_), token = servers
    wrong = token.rpartition(":")[0] + ":not-the-secret"
    intruder = server(3, "--server", first.url, "--token", wrong)
    try:
        with pytest.raises(RuntimeError) as e:
            intruder.start(timeout=60)
        assert "refused the token" in str(e.value)
        assert not etcd_member_pids(intruder.data_dir)
        assert not os.path.exists(os.path.join(intruder.data_dir, "pki", "ca.key"))
    finally:
        intruder.cleanup()
    listed = kyb("etcd", "member-list", "--data-dir", first.data_dir, "--etcd-client-port", str(CLIENT_PORTS[0]))
    assert f"127.0.0.1:{PEER_PORTS[3]}" not in listed.stdout


def test_a_server_on_the_same_store_by_datastore_endpoint_takes_the_clusters_ca(servers):
    (first, second, _), token = servers
    etcd_pki = os.path.join(second.data_dir, "pki", "etcd")
    external = ["--advertise-address", "127.0.0.1", "--disable-scheduler", "--disable-controllers",
                "--datastore-endpoint", f"https://127.0.0.1:{CLIENT_PORTS[1]}",
                "--datastore-cafile", os.path.join(etcd_pki, "ca.crt"),
                "--datastore-certfile", os.path.join(etcd_pki, "apiserver-etcd-client.crt"),
                "--datastore-keyfile", os.path.join(etcd_pki, "apiserver-etcd-client.key")]
    wrong = ServerProcess(port=API_PORTS[3], extra_args=[*external, "--token", "not-the-clusters"])
    try:
        with pytest.raises(RuntimeError) as e:
            wrong.start(timeout=60)
        assert "does not open" in str(e.value)
    finally:
        wrong.cleanup()
    other = ServerProcess(port=API_PORTS[3], extra_args=[*external, "--token", token])
    try:
        other.start(timeout=60)
        for rel in ("pki/ca.crt", "pki/sa.key", "encryption-config.yaml"):
            with open(os.path.join(first.data_dir, rel), "rb") as a, open(os.path.join(other.data_dir, rel), "rb") as b:
                assert a.read() == b.read(), rel
        got = json.loads(other.kubectl_ok("-n", NS, "get", "cm", "from-first", "-o", "json"))
        assert got["data"] == {"v": "1"}
        # The first server's admin credential is good here: one CA.
        assert first.kubectl("--server", other.url, "-n", NS, "get", "cm", "from-first").ok
    finally:
        other.cleanup()


def test_two_of_three_carry_on_when_the_first_is_killed_and_it_catches_up(servers):
    (first, second, third), _ = servers
    first.kill9()
    wait_for(lambda: not etcd_member_pids(first.data_dir), timeout=20, what="the first member to die with its server")
    second.kubectl_ok("apply", "-f", "-", stdin=configmap("while-down", "2"))
    got = json.loads(third.kubectl_ok("-n", NS, "get", "cm", "while-down", "-o", "json"))
    assert got["data"] == {"v": "2"}
    first.start(timeout=60)
    assert "etcd member restarted on its data" in first.log_tail(20000)
    got = json.loads(first.kubectl_ok("-n", NS, "get", "cm", "while-down", "-o", "json"))
    assert got["data"] == {"v": "2"}


def members(srv: ServerProcess, i: int) -> str:
    listed = kyb("etcd", "member-list", "--data-dir", srv.data_dir, "--etcd-client-port", str(CLIENT_PORTS[i]))
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_a_join_that_never_starts_costs_no_quorum_and_is_removed_by_id(servers):
    (first, second, _), token = servers
    with open(os.path.join(first.data_dir, "pki", "ca.crt")) as f:
        ctx = ssl.create_default_context(cadata=f.read())
    req = urllib.request.Request(first.url + "/v1-kyb/server-bootstrap", method="POST",
                                 data=json.dumps({"name": "ghost", "peerURL": "https://127.0.0.1:1"}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        assert r.status == 200
    [ghost] = [line for line in members(first, 0).splitlines() if "127.0.0.1:1" in line]
    assert "(not started)" in ghost and "learner" in ghost
    # A learner has no vote: the cluster writes on as before.
    second.kubectl_ok("apply", "-f", "-", stdin=configmap("with-ghost", "4"))
    r = kyb("etcd", "remove-member", ghost.split()[0], "--data-dir", first.data_dir,
            "--etcd-client-port", str(CLIENT_PORTS[0]))
    assert r.returncode == 0, r.stderr
    assert "127.0.0.1:1\n" not in members(first, 0) and len(members(first, 0).splitlines()) == 3


def test_deleting_a_stopped_servers_node_removes_its_member(servers):
    (first, second, third), _ = servers
    with open(os.path.join(third.data_dir, "etcd-name"), encoding="utf-8") as f:
        name = f.read().strip()
    third.stop()
    wait_for(lambda: not etcd_member_pids(third.data_dir), timeout=20, what="the third member to stop")
    # The Node its embedded agent would have registered (these servers run none).
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "join-e2e-third", "labels": {"etcd.kybernetes.io/member": name}}}
    first.kubectl_ok("create", "-f", "-", stdin=json.dumps(node))
    assert name in members(first, 0)
    first.kubectl_ok("delete", "node", "join-e2e-third")
    wait_for(lambda: name not in members(second, 1), timeout=30, what="the deleted Node's member to go")
    assert len(members(first, 0).splitlines()) == 2
    # Two members of two: still writable.
    first.kubectl_ok("apply", "-f", "-", stdin=configmap("after-removal", "3"))
    assert json.loads(second.kubectl_ok("-n", NS, "get", "cm", "after-removal", "-o", "json"))["data"] == {"v": "3"}
