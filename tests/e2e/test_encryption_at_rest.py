"""Secrets encrypted at rest (issue 15): real kubectl against a real `kyb server`.

A Secret's value is nowhere in the SQLite file or its WAL, yet kubectl reads it back;
`kyb secrets rotate` moves every Secret to a new key while the server runs, after
which the old key can be removed; an identity-first configuration stores plain text
(the same grep finds it, so the check can fail); a Secret under a key that no longer
decrypts it is an error for that object, not for the server; API workers decrypt too.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time

import pytest
import yaml

from kybernetes.testing.cluster import ServerProcess

API_ONLY = ["--disable-controllers", "--disable-scheduler"]


def kyb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli.main", *args], capture_output=True, text=True,
                          timeout=180)


def ok(srv: ServerProcess, *args: str) -> str:
    r = srv.kubectl(*args)
    assert r.ok, f"kubectl {' '.join(args)}: {r.stderr}{r.stdout}"
    return r.stdout


def on_disk(srv: ServerProcess, needle: str) -> list[str]:
    """The store files (database and WAL) in which `grep -a` finds `needle`."""
    db = os.path.join(srv.data_dir, "state.db")
    found = []
    for path in (db, db + "-wal"):
        if os.path.exists(path) and subprocess.run(["grep", "-a", "-q", "-F", needle, path]).returncode == 0:
            found.append(os.path.basename(path))
    return found


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret_value(srv: ServerProcess, name: str, field: str = "k") -> str:
    return base64.b64decode(ok(srv, "get", "secret", name, "-o", f"jsonpath={{.data.{field}}}")).decode()


def status(srv: ServerProcess, config: str = "") -> list[dict]:
    extra = ["--encryption-provider-config", config] if config else []
    r = kyb("secrets", "status", "--data-dir", srv.data_dir, "-o", "json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def write_config(path: str, providers: list[dict], resources: tuple[str, ...] = ("secrets",)) -> None:
    doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
           "resources": [{"resources": list(resources), "providers": providers}]}
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    os.chmod(path, 0o600)


def key(name: str) -> dict:
    return {"name": name, "secret": base64.b64encode(os.urandom(32)).decode()}


def restart(srv: ServerProcess) -> None:
    srv.stop()
    srv.start()


@pytest.fixture(scope="module")
def srv():
    server = ServerProcess(extra_args=API_ONLY)
    server.start()
    yield server
    server.cleanup()


def test_a_secret_value_is_in_neither_the_database_nor_its_wal(srv: ServerProcess) -> None:
    value = "Zebra-Quartz-7731-at-rest"
    ok(srv, "create", "secret", "generic", "disk-check", f"--from-literal=k={value}",
       "--from-literal=other=second-value-4419")
    # The control: a ConfigMap is not configured for encryption, so the same grep finds it.
    ok(srv, "create", "configmap", "disk-control", "--from-literal=k=Plain-Okapi-5521")
    assert on_disk(srv, "Plain-Okapi-5521")
    for needle in (value, b64(value), "second-value-4419", b64("second-value-4419")):
        assert on_disk(srv, needle) == [], f"{needle!r} is readable on disk"
    assert on_disk(srv, "k8s:enc:aescbc:v1:key1:")
    assert secret_value(srv, "disk-check") == value
    out = yaml.safe_load(ok(srv, "get", "secret", "disk-check", "-o", "yaml"))
    assert out["data"]["other"] == b64("second-value-4419")
    config = os.path.join(srv.data_dir, "encryption-config.yaml")
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert yaml.safe_load(open(config))["kind"] == "EncryptionConfiguration"
    listed = json.loads(ok(srv, "get", "secrets", "-o", "json"))
    assert "disk-check" in {i["metadata"]["name"] for i in listed["items"]}


def test_rotation_moves_every_secret_to_the_new_key_and_the_old_key_can_go(srv: ServerProcess) -> None:
    ok(srv, "create", "secret", "generic", "before-rotate", "--from-literal=k=Old-Heron-1187")
    before = status(srv)
    assert before and all(r["label"] == "aescbc:key1" and r["current"] for r in before if r["resource"] == "secrets")
    r = kyb("secrets", "rotate", "--data-dir", srv.data_dir)
    assert r.returncode == 0, r.stderr
    assert "aescbc:key2" in r.stdout and "every object is stored under the new key" in r.stdout
    ok(srv, "create", "secret", "generic", "after-rotate", "--from-literal=k=New-Ibis-2291")
    assert secret_value(srv, "before-rotate") == "Old-Heron-1187"
    assert secret_value(srv, "after-rotate") == "New-Ibis-2291"
    rows = [r for r in status(srv) if r["resource"] == "secrets"]
    assert [(r["label"], r["current"]) for r in rows] == [("aescbc:key2", True)], rows
    assert rows[0]["objects"] >= 3
    table = kyb("secrets", "status", "--data-dir", srv.data_dir).stdout
    assert "aescbc:key2" in table and "key1" not in table
    each = json.loads(kyb("secrets", "status", "--data-dir", srv.data_dir, "--objects", "-o", "json").stdout)
    by_key = {o["key"]: o["label"] for o in each}
    assert by_key["/registry/core/secrets/default/before-rotate"] == "aescbc:key2"
    assert by_key["/registry/core/secrets/default/after-rotate"] == "aescbc:key2"
    assert not any(k.startswith("/registry/core/configmaps/") for k in by_key)

    # Remove the old key: everything is still readable, after a restart too.
    path = os.path.join(srv.data_dir, "encryption-config.yaml")
    doc = yaml.safe_load(open(path))
    keys = doc["resources"][0]["providers"][0]["aescbc"]["keys"]
    assert [k["name"] for k in keys] == ["key2", "key1"]
    del keys[1:]
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    restart(srv)
    assert secret_value(srv, "before-rotate") == "Old-Heron-1187"
    assert secret_value(srv, "after-rotate") == "New-Ibis-2291"
    assert secret_value(srv, "disk-check") == "Zebra-Quartz-7731-at-rest"
    for needle in ("Old-Heron-1187", b64("Old-Heron-1187"), b64("New-Ibis-2291")):
        assert on_disk(srv, needle) == []


def test_an_identity_first_configuration_stores_plain_text(tmp_path) -> None:
    config = str(tmp_path / "enc.yaml")
    write_config(config, [{"identity": {}}, {"secretbox": {"keys": [key("box1")]}}])
    srv = ServerProcess(extra_args=[*API_ONLY, "--encryption-provider-config", config])
    try:
        srv.start()
        ok(srv, "create", "secret", "generic", "plain", "--from-literal=k=Visible-Lynx-3307")
        assert on_disk(srv, b64("Visible-Lynx-3307"))
        assert secret_value(srv, "plain") == "Visible-Lynx-3307"
        assert not os.path.exists(os.path.join(srv.data_dir, "encryption-config.yaml"))
        assert [r["label"] for r in status(srv, config) if r["resource"] == "secrets"] == ["identity"]
        # Putting secretbox first while the server runs encrypts what is there (no restart).
        write_config(config, [{"secretbox": {"keys": [key("box1")]}}, {"identity": {}}])
        deadline = time.monotonic() + 30
        while on_disk(srv, "k8s:enc:secretbox:v1:box1:") == [] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert [(r["label"], r["current"]) for r in status(srv, config) if r["resource"] == "secrets"] == [
            ("secretbox:box1", True)]
        assert secret_value(srv, "plain") == "Visible-Lynx-3307"
    finally:
        srv.cleanup()


def test_a_secret_under_a_wrong_key_is_an_error_for_it_alone(tmp_path) -> None:
    config = str(tmp_path / "enc.yaml")
    write_config(config, [{"aescbc": {"keys": [key("key1")]}}])
    srv = ServerProcess(extra_args=[*API_ONLY, "--encryption-provider-config", config])
    try:
        srv.start()
        ok(srv, "create", "secret", "generic", "victim", "--from-literal=k=Lost-Marten-6401")
        srv.stop()
        # The same key name with different bytes: AES-CBC is not authenticated, so this
        # must still be caught rather than served as garbage.
        write_config(config, [{"aescbc": {"keys": [key("key2"), key("key1")]}}])
        srv.start()
        r = srv.kubectl("get", "secret", "victim")
        assert not r.ok
        assert "unable to transform key" in r.stderr and "victim" in r.stderr, r.stderr
        ok(srv, "create", "secret", "generic", "survivor", "--from-literal=k=Fine-Stoat-8820")
        assert secret_value(srv, "survivor") == "Fine-Stoat-8820"
        names = {i["metadata"]["name"] for i in json.loads(ok(srv, "get", "secrets", "-o", "json"))["items"]}
        assert "survivor" in names and "victim" not in names
        assert ok(srv, "get", "--raw", "/readyz").strip() == "ok"
        assert srv.proc is not None and srv.proc.poll() is None
        rows = {r["label"]: r for r in status(srv, config) if r["resource"] == "secrets"}
        assert rows["aescbc:key1"]["objects"] == 1 and not rows["aescbc:key1"]["current"]
    finally:
        srv.cleanup()


def test_a_bad_configuration_file_stops_the_server_with_why(tmp_path) -> None:
    config = str(tmp_path / "enc.yaml")
    write_config(config, [{"aescbc": {"keys": [{"name": "k", "secret": base64.b64encode(b"short").decode()}]}}])
    srv = ServerProcess(extra_args=[*API_ONLY, "--encryption-provider-config", config])
    try:
        with pytest.raises(RuntimeError, match="5 bytes"):
            srv.start(timeout=20)
    finally:
        srv.cleanup()


def test_api_workers_decrypt_and_follow_a_rotation() -> None:
    from tests.e2e.test_api_workers import _wait_for_workers

    srv = ServerProcess(extra_args=[*API_ONLY, "--api-workers", "2"])
    try:
        srv.start()
        _wait_for_workers(srv, 1)
        ok(srv, "create", "secret", "generic", "w1", "--from-literal=k=Worker-Vole-5150")
        # New connections land on either process.
        for _ in range(6):
            assert secret_value(srv, "w1") == "Worker-Vole-5150"
        r = kyb("secrets", "rotate", "--data-dir", srv.data_dir)
        assert r.returncode == 0, r.stderr
        ok(srv, "create", "secret", "generic", "w2", "--from-literal=k=Worker-Shrew-6260")
        for _ in range(6):
            assert secret_value(srv, "w1") == "Worker-Vole-5150"
            assert secret_value(srv, "w2") == "Worker-Shrew-6260"
        assert on_disk(srv, b64("Worker-Shrew-6260")) == []
    finally:
        srv.cleanup()


def test_a_lost_default_key_file_is_not_silently_replaced(srv: ServerProcess) -> None:
    path = os.path.join(srv.data_dir, "encryption-config.yaml")
    srv.stop()
    os.rename(path, path + ".saved")
    try:
        with pytest.raises(RuntimeError, match="restore the file"):
            srv.start(timeout=20)
        assert not os.path.exists(path)
    finally:
        os.rename(path + ".saved", path)
    srv.start()
    assert secret_value(srv, "disk-check") == "Zebra-Quartz-7731-at-rest"
