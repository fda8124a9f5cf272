"""Servers joining servers (issue 17): the bootstrap data sealed with the server token
(storage.bootstrapdata), its reconciliation with the store, the join endpoint and member
planning (apiserver.serverjoin), and the joining member's command line."""

from __future__ import annotations

import base64
import json
import os

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from kybernetes.apiserver import serverjoin as sj
from kybernetes.cli.main import main
from kybernetes.storage import bootstrapdata as bd
from kybernetes.storage.etcdmember import MemberConfig, MemberTls, choose_datastore, member_command
from kybernetes.storage.sqlite import SQLiteStore

HASH = "ab" * 32
FILES = {"pki/ca.crt": b"CA", "pki/ca.key": b"KEY", "encryption-config.yaml": b"enc"}


# -- the token ---------------------------------------------------------------------------------


def test_a_full_token_carries_the_ca_pin_and_a_bare_one_is_the_same_secret():
    tok = bd.parse_token(f"K10{HASH}::server:s3cret")
    assert tok == bd.ServerToken("s3cret", "sha256:" + HASH)
    assert bd.parse_token(tok.full()) == tok
    assert bd.parse_token("s3cret").secret == tok.secret
    assert bd.token_matches("s3cret", tok.full()) and bd.token_matches("s3cret", "s3cret")
    assert not bd.token_matches("s3cret", "other") and not bd.token_matches("s3cret", "")


@pytest.mark.parametrize("bad", ["", "K10abc::server:x", f"K10{HASH}::server:", "a b", "x:y"])
def test_a_malformed_token_is_refused(bad):
    with pytest.raises(ValueError):
        bd.parse_token(bad)


def test_the_storage_key_is_outside_the_registry_and_does_not_reveal_the_secret():
    key = bd.storage_key("s3cret")
    assert key.startswith("/bootstrap/") and "s3cret" not in key
    assert key == bd.storage_key("s3cret") != bd.storage_key("other")


# -- sealing -----------------------------------------------------------------------------------


def test_sealed_files_open_with_the_token_only():
    blob = bd.seal(FILES, "s3cret")
    assert b"KEY" not in blob and b"CA" not in base64.b64decode(json.loads(blob)["data"])
    assert bd.unseal(blob, "s3cret") == FILES
    with pytest.raises(bd.WrongToken):
        bd.unseal(blob, "other")


def test_damaged_or_foreign_data_is_refused_with_why():
    blob = json.loads(bd.seal(FILES, "s3cret"))
    data = bytearray(base64.b64decode(blob["data"]))
    data[0] ^= 1
    blob["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(bd.WrongToken):  # AES-GCM cannot tell tampering from another key
        bd.unseal(json.dumps(blob).encode(), "s3cret")
    with pytest.raises(bd.BootstrapError, match="damaged"):
        bd.unseal(b"not json", "s3cret")
    with pytest.raises(bd.BootstrapError, match="unknown format"):
        bd.unseal(json.dumps({"v": 9}).encode(), "s3cret")


# -- reconciliation ----------------------------------------------------------------------------


def _base(files):
    return {p: bd.digest(d) for p, d in files.items()}


def test_an_empty_store_gets_the_local_files():
    p = bd.plan(FILES, None, {})
    assert p.to_store and not p.to_disk and not p.conflicts


def test_a_server_that_never_synced_takes_the_clusters_files():
    mine = {"pki/ca.crt": b"mine", "pki/ca.key": b"mine"}
    p = bd.plan(mine, FILES, {})
    assert p.to_disk == FILES and not p.to_store
    assert p.merged(mine) == FILES


def test_the_side_that_changed_since_the_last_sync_wins_and_both_changing_is_a_conflict():
    base = _base(FILES)
    rotated = {**FILES, "encryption-config.yaml": b"enc2"}
    assert bd.plan(rotated, FILES, base).to_store  # rotated here: the store learns it
    p = bd.plan(FILES, rotated, base)  # rotated elsewhere: this server learns it
    assert p.to_disk == {"encryption-config.yaml": b"enc2"} and not p.to_store
    both = bd.plan({**FILES, "encryption-config.yaml": b"here"}, rotated, base)
    assert both.conflicts == ["encryption-config.yaml"]
    added = bd.plan({**FILES, "pki/tokens.csv": b"t"}, FILES, base)
    assert added.to_store and not added.conflicts
    assert bd.plan(FILES, FILES, {}) == bd.Plan()


async def test_sync_stores_reads_back_and_refuses_another_clusters_token(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.start()
    try:
        first, second = tmp_path / "a", tmp_path / "b"
        sj.write_files(str(first), FILES)
        assert "stored" in await sj.sync_bootstrap(store, str(first), "s3cret")
        assert "agree" in await sj.sync_bootstrap(store, str(first), "s3cret")
        # A second server on the same store, same token: takes the CA instead of its own.
        sj.write_files(str(second), {"pki/ca.crt": b"own", "pki/ca.key": b"own"})
        await sj.sync_bootstrap(store, str(second), "s3cret")
        assert sj.read_local(str(second)) == FILES
        assert os.stat(second / "pki" / "ca.key").st_mode & 0o777 == 0o600
        with pytest.raises(bd.WrongToken, match="does not open"):
            await sj.sync_bootstrap(store, str(tmp_path / "c"), "wrong")
        # A rotation on one server reaches the store, and the other server at its next start.
        sj.write_files(str(first), {"encryption-config.yaml": b"enc2"})
        assert "newer" in await sj.sync_bootstrap(store, str(first), "s3cret")
        assert "took encryption-config.yaml" in await sj.sync_bootstrap(store, str(second), "s3cret")
    finally:
        await store.close()


# -- the endpoint --------------------------------------------------------------------------------


class _FakeEtcd:
    def __init__(self, blob: bytes | None) -> None:
        self.blob = blob

    async def get(self, key: str):
        class KV:
            value = self.blob
        return KV() if self.blob is not None and key == bd.storage_key("s3cret") else None


async def _client(endpoint: sj.BootstrapEndpoint) -> TestClient:
    app = web.Application()
    app.router.add_route("*", sj.PATH, endpoint.handle)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_endpoint_answers_only_the_server_token():
    blob = bd.seal(FILES, "s3cret")
    client = await _client(sj.BootstrapEndpoint(_FakeEtcd(blob), "s3cret", membership=False))  # type: ignore[arg-type]
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = await client.get(sj.PATH, headers=headers)
            assert r.status == 401 and (await r.json())["reason"] == "Unauthorized"
        r = await client.get(sj.PATH, headers={"Authorization": f"Bearer K10{HASH}::server:s3cret"})
        assert r.status == 200
        assert bd.unseal(base64.b64decode((await r.json())["bootstrap"]), "s3cret") == FILES
        # No member to add on a server using an external etcd.
        r = await client.post(sj.PATH, json={"name": "x", "peerURL": "https://h:2380"},
                              headers={"Authorization": "Bearer s3cret"})
        assert r.status == 400
    finally:
        await client.close()


# -- membership ----------------------------------------------------------------------------------


def test_a_joiner_is_added_once_and_a_dead_servers_member_at_its_address_goes():
    a = sj.Member(1, "a", ("https://10.0.0.1:2380",))
    assert sj.plan_member_add([a], "b", "https://10.0.0.2:2380") == ([], True)
    unstarted = sj.Member(2, "", ("https://10.0.0.2:2380",))
    assert sj.plan_member_add([a, unstarted], "b", "https://10.0.0.2:2380") == ([], False)
    stale = sj.Member(3, "old", ("https://10.0.0.2:2380",))
    assert sj.plan_member_add([a, stale], "b", "https://10.0.0.2:2380") == ([3], True)
    assert sj.initial_members([a, unstarted], "b", "https://10.0.0.2:2380") == (
        ("a", "https://10.0.0.1:2380"), ("b", "https://10.0.0.2:2380"))


def test_a_joining_member_starts_with_the_existing_cluster():
    tls = MemberTls("/p/ca.crt", "/p/s.crt", "/p/s.key", "/p/p.crt", "/p/p.key")
    cfg = MemberConfig("b", "/d/etcd", tls, "10.0.0.2", 2379, 2380,
                       existing_cluster=(("a", "https://10.0.0.1:2380"), ("b", "https://10.0.0.2:2380")))
    cmd = member_command(cfg)
    assert "--initial-cluster=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380" in cmd
    assert "--initial-cluster-state=existing" in cmd
    founding = member_command(MemberConfig("a", "/d/etcd", tls, "10.0.0.1"))
    assert "--initial-cluster-state=new" in founding and "--initial-cluster=a=https://10.0.0.1:2380" in founding


def test_join_flags_pick_an_embedded_member_and_contradictions_are_refused():
    base = {"endpoint": "", "api_workers": 1, "member_data": False, "sqlite_data": False}
    choice = choose_datastore(cluster_init=False, join_url="https://s:6443/", **base)
    assert choice.kind == "embedded-etcd" and choice.join_url == "https://s:6443"
    with pytest.raises(ValueError, match="--server"):
        choose_datastore(cluster_init=True, join_url="https://s:6443", **base)
    with pytest.raises(ValueError, match="SQLite"):
        choose_datastore(cluster_init=False, join_url="https://s:6443", **{**base, "sqlite_data": True})


def test_server_without_a_token_cannot_join(tmp_path):
    r = CliRunner().invoke(main, ["server", "--data-dir", str(tmp_path), "--server", "https://s:6443"])
    assert r.exit_code != 0 and "--token" in r.output


async def test_a_join_without_a_ca_pin_is_refused_before_dialling():
    with pytest.raises(sj.JoinError, match="unverified"):
        await sj.join_cluster("https://127.0.0.1:1", "bare-secret", "b", "https://127.0.0.1:2380")


def test_only_started_learners_are_promoted():
    voter = sj.Member(1, "a", ("https://10.0.0.1:2380",))
    started = sj.Member(2, "b", ("https://10.0.0.2:2380",), is_learner=True)
    unstarted = sj.Member(3, "", ("https://10.0.0.3:2380",), is_learner=True)
    assert sj.to_promote([voter, started, unstarted]) == [started]


def test_a_deleted_server_nodes_member_is_removed_but_never_the_servers_own():
    node = {"metadata": {"name": "n", "labels": {sj.MEMBER_LABEL: "host-ab12"}}}
    assert sj.departed_member("DELETED", sj.NODES + "n", node, own="host") == "host-ab12"
    assert sj.departed_member("DELETED", sj.NODES + "n", node, own="host-ab12") == ""
    assert sj.departed_member("MODIFIED", sj.NODES + "n", node, own="host") == ""
    assert sj.departed_member("DELETED", "/registry/core/pods/n", node, own="host") == ""
    assert sj.departed_member("DELETED", sj.NODES + "m", {"metadata": {"name": "m"}}, own="host") == ""
