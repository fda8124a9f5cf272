"""Encryption at rest: the envelope, the configuration file, and the store wrapper."""

from __future__ import annotations

import asyncio
import base64
import os

import orjson
import pytest
import yaml

from kybernetes.storage.encryption import (
    AESCBC,
    AESGCM_,
    EncryptingStore,
    EncryptionConfigError,
    Key,
    Secretbox,
    TransformError,
    config_from_dict,
    default_config_doc,
    parse_config,
    rewrite_stale,
    rotate_doc,
    split_envelope,
    stored_labels,
    summarize,
    unreadable_reason,
    value_label,
)
from kybernetes.storage.sqlite import SQLiteStore

OBJ = orjson.dumps({"metadata": {"name": "s"}, "data": {"k": base64.b64encode(b"hunter2-distinct").decode()}})
SKEY = "/registry/core/secrets/default/s"


def b64(n: int = 32, fill: int | None = None) -> str:
    raw = os.urandom(n) if fill is None else bytes([fill]) * n
    return base64.b64encode(raw).decode()


def doc(*providers: dict, resources: tuple[str, ...] = ("secrets",)) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}]}


def aescbc(*names: str, fill: int | None = None) -> dict:
    return {"aescbc": {"keys": [{"name": n, "secret": b64(fill=fill)} for n in names]}}


# -- envelope ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [AESCBC, AESGCM_, Secretbox])
def test_each_provider_round_trips_with_upstreams_prefix_and_random_iv(cls) -> None:
    p = cls([Key("k1", os.urandom(32))])
    a, b = p.encrypt(OBJ, SKEY.encode()), p.encrypt(OBJ, SKEY.encode())
    assert a.startswith(f"k8s:enc:{cls.name}:v1:k1:".encode())
    assert a != b  # a fresh IV / nonce each time
    assert b"hunter2" not in a and OBJ not in a
    prov, key, body = split_envelope(a)
    assert (prov, key) == (cls.name, "k1")
    assert p.decrypt(key, body, SKEY.encode()) == OBJ


def test_aescbc_layout_is_iv_then_pkcs7_padded_blocks() -> None:
    p = AESCBC([Key("k", os.urandom(16))])
    for n in (0, 1, 15, 16, 17):
        data = b"{" + b"x" * n
        body = split_envelope(p.encrypt(data, b""))[2]
        assert len(body) == 16 + (len(data) // 16 + 1) * 16
        assert p.decrypt("k", body, b"") == data


def test_aesgcm_binds_the_value_to_its_storage_key() -> None:
    p = AESGCM_([Key("k", os.urandom(32))])
    body = split_envelope(p.encrypt(OBJ, b"/registry/core/secrets/a/x"))[2]
    with pytest.raises(TransformError, match="authentication"):
        p.decrypt("k", body, b"/registry/core/secrets/b/x")


@pytest.mark.parametrize("kind", ["aescbc", "aesgcm", "secretbox"])
def test_a_wrong_key_of_the_same_name_is_an_error_not_garbage(kind: str) -> None:
    right = config_from_dict(doc({kind: {"keys": [{"name": "k", "secret": b64()}]}})).for_key(SKEY)
    wrong = config_from_dict(doc({kind: {"keys": [{"name": "k", "secret": b64()}]}})).for_key(SKEY)
    assert right is not None and wrong is not None
    stored = right.to_storage(SKEY, OBJ)
    for _ in range(20):  # CBC's padding check alone passes 1 in ~256
        with pytest.raises(TransformError):
            wrong.from_storage(SKEY, right.to_storage(SKEY, OBJ))
    assert right.from_storage(SKEY, stored) == OBJ


def test_reads_pick_the_key_named_in_the_prefix_and_identity_reads_plain() -> None:
    old = config_from_dict(doc(aescbc("a"), {"identity": {}}))
    t_old = old.for_key(SKEY)
    stored_a = t_old.to_storage(SKEY, OBJ)
    d = doc(aescbc("a"), {"identity": {}})
    d["resources"][0]["providers"][0]["aescbc"]["keys"] = old_keys = [
        {"name": "b", "secret": b64()}, *[{"name": "a", "secret": base64.b64encode(k.secret).decode()}
                                          for k in t_old.writer.keys]]
    t_new = config_from_dict(d).for_key(SKEY)
    assert len(old_keys) == 2 and t_new.write_label() == "aescbc:b"
    assert t_new.from_storage(SKEY, stored_a) == OBJ and t_new.stale(stored_a)
    assert value_label(t_new.to_storage(SKEY, OBJ)) == "aescbc:b"
    assert t_new.from_storage(SKEY, OBJ) == OBJ and value_label(OBJ) == "identity" and t_new.stale(OBJ)


def test_without_identity_plain_values_and_unknown_keys_are_refused_with_why() -> None:
    t = config_from_dict(doc(aescbc("a"))).for_key(SKEY)
    with pytest.raises(TransformError, match="no matching prefix"):
        t.from_storage(SKEY, OBJ)
    other = config_from_dict(doc(aescbc("zz"))).for_key(SKEY).to_storage(SKEY, OBJ)
    with pytest.raises(TransformError, match="no matching key"):
        t.from_storage(SKEY, other)


def test_identity_first_stores_plain_text() -> None:
    t = config_from_dict(doc({"identity": {}}, aescbc("a"))).for_key(SKEY)
    assert t.to_storage(SKEY, OBJ) == OBJ and t.write_label() == "identity"


# -- configuration ----------------------------------------------------------------------------


def test_resources_match_by_group_and_wildcards_in_order() -> None:
    d = doc(aescbc("a"), resources=("secrets", "deployments.apps", "*.batch"))
    d["resources"].append({"resources": ["*.*"], "providers": [{"identity": {}}]})
    c = config_from_dict(d)
    first = c.entries[0][1]
    assert c.for_key("/registry/core/secrets/ns/x") is first
    assert c.for_key("/registry/apps/deployments/ns/x") is first
    assert c.for_key("/registry/batch/jobs/ns/x") is first
    assert c.for_key("/registry/core/configmaps/ns/x") is c.entries[1][1]
    assert c.for_key("/services/ips/10.0.0.1") is None
    assert config_from_dict(doc(aescbc("a"))).for_key("/registry/core/configmaps/ns/x") is None
    assert config_from_dict(doc(aescbc("a"), resources=("*.",))).for_key("/registry/core/pods/a/b") is not None
    assert config_from_dict(doc(aescbc("a"), resources=("*.",))).for_key("/registry/apps/pods/a/b") is None


@pytest.mark.parametrize("bad, why", [
    ({"apiVersion": "v1", "kind": "EncryptionConfiguration"}, "expected apiVersion"),
    (doc({"aescbc": {"keys": []}}), "no valid keys"),
    (doc({"aescbc": {"keys": [{"name": "a", "secret": b64(10)}]}}), "10 bytes"),
    (doc({"secretbox": {"keys": [{"name": "a", "secret": b64(16)}]}}), "needs 32"),
    (doc({"aescbc": {"keys": [{"name": "a", "secret": "!!notbase64"}]}}), "base64"),
    (doc({"aescbc": {"keys": [{"name": "a:b", "secret": b64()}]}}), "may not contain"),
    (doc({"kms": {"name": "x"}}), "not supported"),
    (doc({"rot13": {}}), "unknown provider"),
    (doc(aescbc("a"), resources=("secrets", "secrets")), "listed twice"),
    (doc(aescbc("a", "a")), "unique"),
])
def test_bad_files_are_refused_with_a_reason(bad: dict, why: str) -> None:
    with pytest.raises(EncryptionConfigError, match=why):
        config_from_dict(bad)


def test_the_default_file_encrypts_secrets_with_a_fresh_aescbc_key_and_reads_plain() -> None:
    a, b = default_config_doc(), default_config_doc()
    t = parse_config(yaml.safe_dump(a)).for_key(SKEY)
    assert t.write_label() == "aescbc:key1" and t.reads_plain
    assert a != b


def test_rotate_puts_a_new_key_first_and_keeps_the_old_ones() -> None:
    d = default_config_doc()
    old = d["resources"][0]["providers"][0]["aescbc"]["keys"][0]["secret"]
    assert rotate_doc(d) == ["aescbc:key2"]
    keys = d["resources"][0]["providers"][0]["aescbc"]["keys"]
    assert [k["name"] for k in keys] == ["key2", "key1"] and keys[1]["secret"] == old
    assert rotate_doc(d) == ["aescbc:key3"]
    with pytest.raises(EncryptionConfigError, match="identity"):
        rotate_doc(doc({"identity": {}}, aescbc("a")))


# -- the store wrapper ----------------------------------------------------------------------------


@pytest.fixture
async def stores(tmp_path):
    path = str(tmp_path / "state.db")
    inner = SQLiteStore(path, fsync=False)
    enc = EncryptingStore(inner, config_from_dict(doc(aescbc("key1"), {"identity": {}})))
    await enc.start()
    yield enc, path
    await enc.close()


def raw_files(path: str) -> bytes:
    return b"".join(open(p, "rb").read() for p in (path, path + "-wal") if os.path.exists(p))


async def test_secrets_are_ciphertext_below_and_plain_above(stores) -> None:
    enc, path = stores
    cm = b'{"metadata":{"name":"c"},"data":{"v":"plain-configmap"}}'
    kv = await enc.create(SKEY, OBJ)
    assert kv.value == OBJ
    await enc.create("/registry/core/configmaps/default/c", cm)
    raw = await enc.inner.get(SKEY)
    assert raw.value.startswith(b"k8s:enc:aescbc:v1:key1:")
    assert (await enc.get(SKEY)).value == OBJ
    assert [i.value for i in (await enc.list("/registry/")).items] == [cm, OBJ]
    disk = raw_files(path)
    assert b"hunter2-distinct" not in disk and base64.b64encode(b"hunter2-distinct") not in disk
    assert b"plain-configmap" in disk
    assert dict(stored_labels(path)) == {SKEY: "aescbc:key1", "/registry/core/configmaps/default/c": "identity"}


async def test_watch_events_and_conflicts_carry_plain_values(stores) -> None:
    enc, _ = stores
    stream = enc.watch("/registry/", enc.current_revision())
    kv = await enc.create(SKEY, OBJ)
    new = OBJ.replace(b'"s"', b'"s2"')
    await enc.update(SKEY, new, kv.mod_revision)
    events = []
    while len(events) < 2:
        events += await asyncio.wait_for(stream.__anext__(), 5)
    await stream.aclose()
    assert [e.kv.value for e in events] == [OBJ, new] and events[1].prev.value == OBJ
    from kybernetes.storage.interface import RevisionMismatchError

    with pytest.raises(RevisionMismatchError) as e:
        await enc.update(SKEY, OBJ, kv.mod_revision)
    assert e.value.current.value == new


async def test_an_object_under_a_lost_key_is_reported_not_fatal(stores) -> None:
    enc, _ = stores
    await enc.create(SKEY, OBJ)
    good = "/registry/core/secrets/default/other"
    enc.set_config(config_from_dict(doc(aescbc("key2"), {"identity": {}})))
    await enc.create(good, OBJ)
    listed = await enc.list("/registry/core/secrets/")
    assert [i.key for i in listed.items] == [good]
    assert "no matching key" in unreadable_reason(enc, SKEY)
    with pytest.raises(TransformError, match=f'unable to transform key "{SKEY}"'):
        await enc.get(SKEY)
    deleted = await enc.delete(SKEY)
    assert deleted.value == b"" and unreadable_reason(enc, SKEY) is None


async def test_rewrite_moves_every_object_to_the_first_key(stores) -> None:
    enc, path = stores
    for i in range(5):
        await enc.create(f"/registry/core/secrets/default/s{i}", OBJ)
    await enc.inner.create("/registry/core/secrets/default/plain", OBJ)  # written before encryption was on
    d = doc(aescbc("key1"), {"identity": {}})
    d["resources"][0]["providers"][0]["aescbc"]["keys"] = [
        {"name": "key2", "secret": b64()},
        {"name": "key1", "secret": base64.b64encode(enc.config.entries[0][1].writer.keys[0].secret).decode()}]
    new = config_from_dict(d)
    enc.set_config(new)
    before = summarize(stored_labels(path), new)
    assert {(r.label, r.objects, r.current) for r in before} == {("aescbc:key1", 5, False), ("identity", 1, False)}
    assert await rewrite_stale(enc, page=2) == (6, 0)
    after = summarize(stored_labels(path), new)
    assert [(r.resource, r.label, r.objects, r.current) for r in after] == [("secrets", "aescbc:key2", 6, True)]
    assert await rewrite_stale(enc) == (0, 0)
    # The old key can go now.
    enc.set_config(config_from_dict(doc({"aescbc": {"keys": d["resources"][0]["providers"][0]["aescbc"]["keys"][:1]}})))
    assert len((await enc.list("/registry/core/secrets/")).items) == 6 and not enc.unreadable


async def test_a_limited_list_skips_unreadable_objects_without_stalling(stores) -> None:
    enc, _ = stores
    for i in range(4):
        await enc.create(f"/registry/core/secrets/default/a{i}", OBJ)
    enc.set_config(config_from_dict(doc(aescbc("key2"), {"identity": {}})))
    for i in range(3):
        await enc.create(f"/registry/core/secrets/default/b{i}", OBJ)
    first = await enc.list("/registry/core/secrets/", limit=2)
    assert [i.key.rsplit("/", 1)[1] for i in first.items] == ["b0", "b1"] and first.more
    rest = await enc.list("/registry/core/secrets/", revision=first.revision, limit=2, start_after=first.items[-1].key)
    assert [i.key.rsplit("/", 1)[1] for i in rest.items] == ["b2"] and not rest.more
    assert len(enc.unreadable) == 4
