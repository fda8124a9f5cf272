"""Field checks (types, unknown fields, quantities) that skip subtrees known to pass."""

from __future__ import annotations

import copy

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry
from kybernetes.apiserver.resources import WriteContext, changed_part
from kybernetes.testing.resourceservice import resource_service

REG = Registry()
PODS = REG.get("", "v1", "pods")
NAMESPACES = REG.get("", "v1", "namespaces")
DEPLOYMENTS = REG.get("apps", "v1", "deployments")


@pytest.fixture
async def svc(tmp_path):
    async with resource_service(tmp_path) as service:
        yield service


# Big enough (in JSON) to be remembered once it has passed.
SPEC = {"containers": [{"name": f"c{i}", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}} for i in range(4)]}


def pod(name: str, spec: dict) -> dict:
    return {"metadata": {"name": name}, "spec": copy.deepcopy(spec)}


async def test_a_spec_seen_before_is_still_checked_when_it_differs(svc):
    ctx = WriteContext(field_manager="t", field_validation="Strict")
    await svc.create(PODS, "default", pod("a", SPEC), ctx)
    await svc.create(PODS, "default", pod("b", SPEC), WriteContext(field_manager="t", field_validation="Strict"))
    bad = pod("c", SPEC)
    bad["spec"]["containers"][3]["bogus"] = 1
    with pytest.raises(ApiError) as err:
        await svc.create(PODS, "default", bad, WriteContext(field_manager="t", field_validation="Strict"))
    assert 'unknown field "spec.containers[3].bogus"' in err.value.message
    typed = pod("d", SPEC)
    typed["spec"]["containers"][0]["image"] = 5
    with pytest.raises(ApiError) as err:
        await svc.create(PODS, "default", typed, WriteContext(field_manager="t"))
    assert err.value.code == 400 and "cannot unmarshal number" in err.value.message


async def test_a_spec_with_dropped_fields_or_rewritten_quantities_is_fixed_every_time(svc):
    spec = copy.deepcopy(SPEC)
    spec["containers"][0]["bogus"] = True
    spec["containers"][1]["resources"]["requests"]["cpu"] = "1000m"
    for name in ("a", "b"):
        ctx = WriteContext(field_manager="t")
        res = await svc.create(PODS, "default", pod(name, spec), ctx)
        assert "bogus" not in res.obj["spec"]["containers"][0]
        assert res.obj["spec"]["containers"][1]["resources"]["requests"]["cpu"] == "1"
        assert any("bogus" in w for w in ctx.warnings)


async def test_a_patch_reports_an_unknown_field_deep_in_a_changed_map(svc):
    await svc.create(PODS, "default", pod("a", SPEC), WriteContext(field_manager="t"))
    ctx = WriteContext(field_manager="t", field_validation="Strict", patch_type="merge")
    body = {"metadata": {"labels": {"x": "y"}, "bogus": 1}}
    with pytest.raises(ApiError) as err:
        await svc.patch(PODS, "default", "a", body, "merge", ctx)
    assert 'unknown field "metadata.bogus"' in err.value.message
    res = await svc.patch(PODS, "default", "a", {"metadata": {"labels": {"x": "y"}}}, "merge",
                          WriteContext(field_manager="t", field_validation="Strict", patch_type="merge"))
    assert res.obj["metadata"]["labels"] == {"x": "y"}


async def test_a_patch_checks_changed_list_items_at_their_own_index(svc):
    labels = {"app": "a"}
    dep = {"metadata": {"name": "a"}, "spec": {"selector": {"matchLabels": labels}, "template": {
        "metadata": {"labels": labels}, "spec": copy.deepcopy(SPEC)}}}
    await svc.create(DEPLOYMENTS, "default", dep, WriteContext(field_manager="t"))

    def patch(containers: list) -> dict:
        return {"spec": {"template": {"spec": {"containers": containers}}}}

    containers = copy.deepcopy(SPEC["containers"])
    containers[2]["resources"]["requests"]["cpu"] = "2000m"
    res = await svc.patch(DEPLOYMENTS, "default", "a", patch(containers), "merge",
                          WriteContext(field_manager="t", patch_type="merge"))
    assert res.obj["spec"]["template"]["spec"]["containers"][2]["resources"]["requests"]["cpu"] == "2"
    containers[3]["image"] = 7
    with pytest.raises(ApiError) as err:
        await svc.patch(DEPLOYMENTS, "default", "a", patch(containers), "merge",
                        WriteContext(field_manager="t", patch_type="merge"))
    assert "cannot unmarshal number into Go struct field Container.spec.template.spec.containers.image" \
        in err.value.message
    containers[3]["image"] = "x"
    containers[3]["bogus"] = 1
    with pytest.raises(ApiError) as err:
        await svc.patch(DEPLOYMENTS, "default", "a", patch(containers), "merge",
                        WriteContext(field_manager="t", field_validation="Strict", patch_type="merge"))
    assert 'unknown field "spec.template.spec.containers[3].bogus"' in err.value.message


def test_changed_part_keeps_changed_keys_and_list_positions():
    old = {"a": {"b": 1, "c": [1, 2, {"x": 1, "y": 2}]}, "d": 1}
    new = {"a": {"b": 1, "c": [1, 3, {"x": 1, "y": 3}, 4], "e": {"f": 1}}, "d": 1}
    assert changed_part(new, old) == {"a": {"c": [None, 3, {"y": 3}, 4], "e": {"f": 1}}}
    assert changed_part(new, None) is new
