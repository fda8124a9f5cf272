"""What the pod write path remembers between writes (a valid spec, a created spec's
fields, quantities in canonical form) and what it skips (defaults of a stored spec):
the answers must stay those of a write that remembers nothing."""

from __future__ import annotations

import copy

import pytest

from kybernetes.api import managedfields
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import pod as podkind
from kybernetes.api.registry import Registry
from kybernetes.api.validation import canonical_quantity
from kybernetes.apiserver.resources import WriteContext
from kybernetes.testing.resourceservice import resource_service

REG = Registry()
PODS = REG.get("", "v1", "pods")
NAMESPACES = REG.get("", "v1", "namespaces")


@pytest.fixture
async def svc(tmp_path):
    async with resource_service(tmp_path) as service:
        yield service


def token_spec(*volume_names: str) -> dict:
    """A pod spec as ServiceAccount admission leaves it: token volumes mounted in the container."""
    return {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                            "volumeMounts": [{"name": n, "mountPath": f"/var/run/t{i}", "readOnly": True}
                                             for i, n in enumerate(volume_names)]}],
            "volumes": [{"name": n, "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
                        for n in volume_names]}


def validate(spec: dict) -> list:
    obj = {"metadata": {"name": "p"}, "spec": copy.deepcopy(spec)}
    podkind.default_pod(obj)
    return podkind._validate_pod(PODS, obj)


def key(spec: dict) -> bytes | None:
    obj = {"spec": copy.deepcopy(spec)}
    podkind.default_pod(obj)
    return podkind._valid_spec_key(obj["spec"])


def test_pods_differing_only_in_their_token_volume_share_one_verdict():
    assert validate(token_spec("kube-api-access-abcde")) == []
    key_a = key(token_spec("kube-api-access-abcde"))
    assert key_a == key(token_spec("kube-api-access-zz9xy"))
    assert key_a in podkind._VALID_SPECS
    assert validate(token_spec("kube-api-access-zz9xy")) == []


def test_a_remembered_valid_spec_does_not_answer_for_an_invalid_one():
    assert validate(token_spec("kube-api-access-abcde", "kube-api-access-fghij")) == []
    # The same names twice: equal names stay equal under the key, so the duplicate is found.
    errs = validate(token_spec("kube-api-access-abcde", "kube-api-access-abcde"))
    assert any("volumes[1].name" in e.field and e.type == "FieldValueDuplicate" for e in errs)
    # A name the key could be confused with is not a token name: checked, and refused.
    bad = token_spec("kube-api-access-abcde")
    bad["volumes"][0]["name"] = "\x000\x00"
    bad["containers"][0]["volumeMounts"][0]["name"] = "\x000\x00"
    assert validate(bad) != []
    assert key(bad) != key(token_spec("kube-api-access-abcde"))


def test_invalid_specs_are_never_remembered():
    spec = token_spec("kube-api-access-abcde")
    spec["containers"][0]["image"] = ""
    assert validate(spec) != []
    assert key(spec) not in podkind._VALID_SPECS
    assert validate(spec) != []


def test_a_created_specs_fields_are_the_same_remembered_or_walked():
    schema = PODS.schema()
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "y"}},
           "spec": token_spec("kube-api-access-abcde")}
    managedfields._SPEC_FIELDS.clear()
    first = managedfields.record_update(None, copy.deepcopy(obj), "m", schema, "v1", "2026-01-01T00:00:00Z")
    assert managedfields._SPEC_FIELDS
    again = managedfields.record_update(None, copy.deepcopy(obj), "m", schema, "v1", "2026-01-01T00:00:00Z")
    managedfields._SPEC_FIELDS.clear()
    walked = managedfields.record_update(None, copy.deepcopy(obj), "m", schema, "v1", "2026-01-01T00:00:00Z")
    assert first == again == walked
    fields = first[0]["fieldsV1"]
    assert 'k:{"name":"app"}' in fields["f:spec"]["f:containers"]
    assert "f:labels" in fields["f:metadata"]
    other = copy.deepcopy(obj)
    other["spec"]["containers"][0]["name"] = "web"
    changed = managedfields.record_update(None, other, "m", schema, "v1", "2026-01-01T00:00:00Z")
    assert 'k:{"name":"web"}' in changed[0]["fieldsV1"]["f:spec"]["f:containers"]


def test_quantities_are_canonical_from_the_memo_too():
    for _ in range(2):
        assert canonical_quantity("1000m") == "1"
        assert canonical_quantity("0.5Gi") == "512Mi"
        assert canonical_quantity("bogus") is None
    assert canonical_quantity(1.5) == "1500m"


async def test_status_writes_keep_the_stored_spec_and_spec_updates_are_defaulted(svc):
    created = await svc.create(PODS, "default", {"metadata": {"name": "p"}, "spec": token_spec("kube-api-access-abcde")},
                               WriteContext(field_manager="t"))
    stored = created.obj if created.obj is not None else svc.cache.get(PODS.key("default", "p")).obj
    container = stored["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    res = await svc.patch(PODS, "default", "p", {"status": {"phase": "Running"}}, "merge",
                          WriteContext(field_manager="kubelet"), subresource="status")
    after = svc.cache.get(PODS.key("default", "p")).obj
    assert after["status"]["phase"] == "Running" and res is not None
    assert after["spec"] == stored["spec"]
    # An update that changes the spec and leaves out a defaulted field gets it again.
    new = copy.deepcopy(after)
    new["spec"]["activeDeadlineSeconds"] = 30
    del new["spec"]["containers"][0]["terminationMessagePath"]
    await svc.update(PODS, "default", "p", new, WriteContext(field_manager="t"))
    final = svc.cache.get(PODS.key("default", "p")).obj
    assert final["spec"]["activeDeadlineSeconds"] == 30
    assert final["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"


async def test_an_invalid_pod_after_a_valid_twin_is_refused(svc):
    ctx = WriteContext(field_manager="t")
    await svc.create(PODS, "default", {"metadata": {"name": "a"}, "spec": token_spec("kube-api-access-abcde")}, ctx)
    twin = token_spec("kube-api-access-abcde")
    twin["containers"][0]["volumeMounts"][0]["name"] = "missing"
    with pytest.raises(ApiError) as err:
        await svc.create(PODS, "default", {"metadata": {"name": "b"}, "spec": twin}, WriteContext(field_manager="t"))
    assert err.value.code == 422 and "volumeMounts[0].name" in err.value.message
