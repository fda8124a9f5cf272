"""The embedded etcd member (storage.etcdmember), its certificates (apiserver.pki) and the
server's choice of datastore from its flags."""

from __future__ import annotations

import os
import shutil
import ssl
import stat

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kybernetes.apiserver.pki import ensure_etcd_pki, ensure_pki
from kybernetes.cli.main import main
from kybernetes.storage.etcdmember import (
    DatastoreChoice,
    EtcdMember,
    MemberConfig,
    MemberFailed,
    MemberTls,
    choose_datastore,
    has_member_data,
    healthy,
    member_command,
    member_env,
    parse_endpoints,
)
from kybernetes.testing.cluster import free_port


def _choose(**kw):
    args = {"cluster_init": False, "endpoint": "", "api_workers": 1, "member_data": False, "sqlite_data": False}
    return choose_datastore(**{**args, **kw})


def _flag(cmd: list[str], name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in cmd if a.startswith(f"--{name}=")]
    return value


def _cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


TLS = MemberTls("/p/ca.crt", "/p/server.crt", "/p/server.key", "/p/peer.crt", "/p/peer.key")


# -- which store ------------------------------------------------------------------------------


def test_sqlite_stays_the_default():
    assert _choose() == DatastoreChoice("sqlite")
    assert _choose(sqlite_data=True, api_workers=4).kind == "sqlite"


def test_cluster_init_runs_an_embedded_member_and_a_data_dir_with_one_keeps_it():
    assert _choose(cluster_init=True, client_port=12379, peer_port=12380) == DatastoreChoice(
        "embedded-etcd", client_port=12379, peer_port=12380)
    # Restarted without the flag (as k3s): the member's data is the cluster.
    assert _choose(member_data=True).kind == "embedded-etcd"


def test_external_endpoints_are_parsed_with_their_tls_files():
    c = _choose(endpoint="https://10.0.0.1:2379, https://[fd00::2]:2379/", ca_file="ca", cert_file="c",
                key_file="k")
    assert c == DatastoreChoice("external-etcd", ("https://10.0.0.1:2379", "https://[fd00::2]:2379"), "ca", "c", "k")


@pytest.mark.parametrize("bad", ["10.0.0.1:2379", "https://h", "ftp://h:1", "https://h:2379/x", ",", "https://h:99999"])
def test_a_bad_endpoint_is_named(bad):
    with pytest.raises(ValueError, match="endpoint|URL"):
        parse_endpoints(bad)


@pytest.mark.parametrize(("kw", "why"), [
    ({"cluster_init": True, "endpoint": "https://h:2379"}, "one of them"),
    ({"cluster_init": True, "api_workers": 2}, "--api-workers"),
    ({"endpoint": "https://h:2379", "api_workers": 3}, "--api-workers"),
    ({"cluster_init": True, "sqlite_data": True}, "state.db"),
    ({"ca_file": "ca"}, "--datastore-endpoint"),
    ({"endpoint": "https://h:2379", "cert_file": "c"}, "go together"),
    ({"cluster_init": True, "client_port": 5000, "peer_port": 5000}, "must differ"),
    ({"cluster_init": True, "peer_port": 0}, "1 to 65535"),
])
def test_contradictory_flags_are_refused_with_why(kw, why):
    with pytest.raises(ValueError, match=why):
        _choose(**kw)


def test_the_server_command_refuses_workers_on_etcd_before_starting_anything(tmp_path):
    r = CliRunner().invoke(main, ["server", "--data-dir", str(tmp_path / "d"), "--cluster-init", "--api-workers",
                                  "2", "--disable-agent"])
    assert r.exit_code == 2
    assert "--api-workers > 1 needs the SQLite store" in r.output
    assert not os.path.exists(tmp_path / "d" / "etcd")


# -- the command line -------------------------------------------------------------------------


def test_clients_only_on_loopback_peers_on_the_server_address_tls_both_ways():
    cmd = member_command(MemberConfig("node-a", "/data/etcd", TLS, "10.1.2.3", 12379, 12380), "/usr/bin/etcd")
    assert cmd[0] == "/usr/bin/etcd"
    assert _flag(cmd, "listen-client-urls") == _flag(cmd, "advertise-client-urls") == "https://127.0.0.1:12379"
    assert _flag(cmd, "listen-peer-urls") == "https://10.1.2.3:12380"
    assert _flag(cmd, "initial-cluster") == "node-a=https://10.1.2.3:12380"
    assert _flag(cmd, "data-dir") == "/data/etcd"
    assert _flag(cmd, "client-cert-auth") == _flag(cmd, "peer-client-cert-auth") == "true"
    assert _flag(cmd, "trusted-ca-file") == _flag(cmd, "peer-trusted-ca-file") == "/p/ca.crt"
    assert (_flag(cmd, "cert-file"), _flag(cmd, "peer-key-file")) == ("/p/server.crt", "/p/peer.key")
    # Our compactor decides what history to keep.
    assert _flag(cmd, "auto-compaction-retention") == "0"
    assert 2 * 1024**3 <= int(_flag(cmd, "quota-backend-bytes")) <= 8 * 1024**3
    assert _flag(cmd, "log-level") == "warn"


def test_the_own_server_gets_a_unix_socket_beside_the_tls_listener():
    cfg = MemberConfig("node-a", "/data/etcd", TLS, "10.1.2.3", 12379, 12380, socket_dir="/data/etcd-client")
    cmd = member_command(cfg)
    # etcd 3.4 names a unix listener host:port and puts the socket in its working directory.
    assert _flag(cmd, "listen-client-urls") == "https://127.0.0.1:12379,unix://localhost:12379"
    assert _flag(cmd, "advertise-client-urls") == "https://127.0.0.1:12379"  # other servers use TLS
    assert cfg.socket_path == "/data/etcd-client/localhost:12379"
    assert cfg.local_endpoint == "unix:///data/etcd-client/localhost:12379"
    without = MemberConfig("node-a", "/data/etcd", TLS, "10.1.2.3", 12379, 12380)
    assert without.local_endpoint == without.client_url == "https://127.0.0.1:12379"
    # A socket address holds 107 bytes: a deeper data dir keeps TLS on loopback.
    deep = MemberConfig("node-a", "/data/etcd", TLS, "10.1.2.3", 12379, 12380, socket_dir="/" + "d" * 100)
    assert deep.local_endpoint == "https://127.0.0.1:12379"


def test_an_ipv6_peer_address_is_bracketed():
    cmd = member_command(MemberConfig("n", "/d", TLS, "fd00::5"))
    assert _flag(cmd, "listen-peer-urls") == "https://[fd00::5]:2380"


def test_etcd_variables_do_not_reach_the_member():
    env = member_env({"PATH": "/bin", "ETCD_NAME": "x", "ETCD_DATA_DIR": "/y"}, cpus=4)
    assert env == {"PATH": "/bin", "GOMAXPROCS": "3"}


@pytest.mark.parametrize(("cpus", "procs"), [(1, "1"), (2, "1"), (8, "7")])
def test_the_member_leaves_a_core_to_the_server(cpus, procs):
    assert member_env({}, cpus=cpus)["GOMAXPROCS"] == procs


def test_a_gomaxprocs_the_user_set_is_kept():
    assert member_env({"GOMAXPROCS": "6"}, cpus=2)["GOMAXPROCS"] == "6"


@pytest.mark.parametrize(("status", "body", "ok"), [
    (200, b'{"health":"true","reason":""}', True), (200, b'{"health":"false"}', False),
    (503, b'{"health":"true"}', False), (200, b"<html>", False), (200, b"[]", False),
])
def test_health_is_read_from_the_answer(status, body, ok):
    assert healthy(status, body) is ok


# -- certificates ---------------------------------------------------------------------------


def _usages(cert: x509.Certificate) -> set:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _sans(cert: x509.Certificate) -> set:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def test_member_certificates_are_private_and_name_loopback_and_the_host(tmp_path):
    p = ensure_etcd_pki(str(tmp_path), ["10.9.8.7"])
    for path in (p.ca_key, p.server_key, p.peer_key, p.client_key, p.server_cert):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(os.path.dirname(p.ca_cert)).st_mode) == 0o700
    ca = _cert(p.ca_cert)
    for leaf in (p.server_cert, p.peer_cert):
        cert = _cert(leaf)
        cert.verify_directly_issued_by(ca)
        assert {"127.0.0.1", "localhost", "10.9.8.7"} <= _sans(cert)
        assert _usages(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    client = _cert(p.client_cert)
    client.verify_directly_issued_by(ca)
    assert _usages(client) == {ExtendedKeyUsageOID.CLIENT_AUTH}


def test_the_cluster_ca_cannot_vouch_for_etcd_clients(tmp_path):
    # Node and user certificates come from the cluster CA: etcd must not trust them.
    cluster = ensure_pki(str(tmp_path), [])
    etcd = ensure_etcd_pki(str(tmp_path), [])
    assert _cert(etcd.ca_cert).subject != _cert(cluster.ca_cert).subject
    with pytest.raises(ValueError):
        _cert(etcd.client_cert).verify_directly_issued_by(_cert(cluster.ca_cert))


def test_certificates_are_kept_across_starts_and_a_new_address_is_added(tmp_path):
    first = ensure_etcd_pki(str(tmp_path), ["10.0.0.1"])
    before = {f: open(f, "rb").read() for f in (first.ca_cert, first.server_cert, first.client_cert)}
    again = ensure_etcd_pki(str(tmp_path), ["10.0.0.1"])
    assert {f: open(f, "rb").read() for f in before} == before
    ensure_etcd_pki(str(tmp_path), ["10.0.0.2"])
    sans = _sans(_cert(again.server_cert))
    assert {"10.0.0.1", "10.0.0.2"} <= sans
    assert open(first.ca_cert, "rb").read() == before[first.ca_cert]


# -- the process ----------------------------------------------------------------------------

needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None, reason="Debian's etcd-server is not installed")


def _member(tmp_path, socket_dir: str = "") -> EtcdMember:
    p = ensure_etcd_pki(str(tmp_path), ["127.0.0.1"])
    cfg = MemberConfig("unit", str(tmp_path / "etcd"), MemberTls(p.ca_cert, p.server_cert, p.server_key,
                                                                 p.peer_cert, p.peer_key),
                       "127.0.0.1", free_port(), free_port(), socket_dir=socket_dir)
    return EtcdMember(cfg, str(tmp_path / "etcd.log"), p.client_cert, p.client_key)


@needs_etcd
async def test_the_server_reaches_its_member_over_a_private_socket_even_after_a_kill(tmp_path):
    from kybernetes.storage.etcd import EtcdStore

    m = _member(tmp_path, socket_dir=str(tmp_path / "etcd-client"))
    try:
        m.start()
        await m.wait_healthy(timeout=30)
        assert stat.S_IMODE(os.stat(m.cfg.socket_dir).st_mode) == 0o700
        assert stat.S_ISSOCK(os.stat(m.cfg.socket_path).st_mode)
        store = EtcdStore([m.cfg.local_endpoint], prefix="/registry/")
        await store.start()
        try:
            kv = await store.create("configmaps/default/a", b"v")
            assert (await store.get("configmaps/default/a")).value == b"v"
        finally:
            await store.close()
        # kill -9 leaves the socket file, beside which etcd would refuse to listen.
        assert m.proc is not None
        m.proc.kill()
        m.proc.wait()
        assert os.path.exists(m.cfg.socket_path)
        m.start()
        await m.wait_healthy(timeout=30)
        store = EtcdStore([m.cfg.local_endpoint], prefix="/registry/")
        await store.start()
        try:
            got = await store.get("configmaps/default/a")
            assert got is not None and got.mod_revision == kv.mod_revision
        finally:
            await store.close()
    finally:
        await m.stop()


@needs_etcd
async def test_a_member_starts_healthy_refuses_foreign_clients_and_restarts_on_its_data(tmp_path):
    m = _member(tmp_path)
    try:
        m.start()
        assert not m.restarted_existing
        await m.wait_healthy(timeout=30)
        assert stat.S_IMODE(os.stat(m.cfg.data_dir).st_mode) == 0o700
        assert has_member_data(m.cfg.data_dir)
        # Without a client certificate from the etcd CA, no TLS session.
        other = ensure_pki(str(tmp_path / "other"), [])
        ctx = ssl.create_default_context(cafile=m.cfg.tls.ca_file)
        ctx.load_cert_chain(other.admin_cert, other.admin_key)
        assert not m._probe(ctx)
        await m.stop()
        assert not m.running()
        m.start()
        assert m.restarted_existing
        await m.wait_healthy(timeout=30)
    finally:
        await m.stop()


@needs_etcd
async def test_a_member_that_cannot_start_says_why(tmp_path):
    m = _member(tmp_path)
    # A data dir etcd cannot use: a file where the member's directory must be.
    os.makedirs(m.cfg.data_dir, mode=0o700)
    with open(os.path.join(m.cfg.data_dir, "member"), "w") as f:
        f.write("not a directory")
    m.start()
    try:
        with pytest.raises(MemberFailed, match="exited"):
            await m.wait_healthy(timeout=30)
    finally:
        await m.stop()


@needs_etcd
async def test_an_external_etcd_is_reached_with_the_datastore_tls_files(tmp_path):
    from kybernetes.cli.main import _open_datastore
    from kybernetes.testing.etcd import EtcdProcess

    with EtcdProcess(tls=True) as etcd:
        t = etcd.tls
        assert t is not None
        choice = _choose(endpoint=etcd.url, ca_file=t.ca_file, cert_file=t.client_cert, key_file=t.client_key)
        store, member = await _open_datastore(str(tmp_path), choice, "127.0.0.1")
        assert member is None
        await store.start()
        try:
            await store.create("/registry/configmaps/default/x", b"v")
            got = await store.get("/registry/configmaps/default/x")
            assert got is not None and got.value == b"v"
        finally:
            await store.close()
        # Nothing of an embedded member in the data dir.
        assert not os.path.exists(tmp_path / "etcd")
