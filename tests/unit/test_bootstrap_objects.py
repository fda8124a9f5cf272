"""The objects the API server keeps itself (`BootstrapObjects`), through the real write
pipeline on a SQLite store (no HTTP): one round at a time, and the rounds' own loop, woken
by writes."""

from __future__ import annotations

import asyncio

import pytest

from kybernetes.api.registry import Registry
from kybernetes.apiserver.bootstrapobjects import BootstrapObjects
from kybernetes.apiserver.resources import WriteContext
from kybernetes.testing.resourceservice import resource_service

CTX = WriteContext(field_manager="test")


@pytest.fixture
async def keeper(tmp_path):
    async with resource_service(tmp_path) as service:
        yield BootstrapObjects(Registry(), service.cache, service, ["10.43.0.0/16"])


def _names(keeper: BootstrapObjects, group: str, plural: str) -> dict[str, dict]:
    info = keeper.registry.get(group, "v1", plural)
    return {co.obj["metadata"]["name"]: co.obj for co in keeper.cache.list(info.storage_prefix())}


async def _settle(keeper: BootstrapObjects) -> None:
    # Status follows a create or a spec fix in the next round, as on the server.
    for _ in range(3):
        await keeper.sync()


async def test_a_fresh_store_gets_every_bootstrap_object(keeper) -> None:
    await _settle(keeper)
    schemas = _names(keeper, "flowcontrol.apiserver.k8s.io", "flowschemas")
    assert {"exempt", "catch-all", "probes", "global-default"} <= set(schemas)
    dangling = [c for c in schemas["catch-all"]["status"]["conditions"] if c["type"] == "Dangling"]
    assert dangling[0]["status"] == "False"
    assert {"exempt", "catch-all", "workload-low"} <= set(_names(keeper, "flowcontrol.apiserver.k8s.io",
                                                                 "prioritylevelconfigurations"))
    services = _names(keeper, "apiregistration.k8s.io", "apiservices")
    assert {"v1.", "v1.apps", "v2.autoscaling", "v1.resource.k8s.io"} <= set(services)
    assert services["v1.apps"]["status"]["conditions"][0]["reason"] == "Local"
    cidr = _names(keeper, "networking.k8s.io", "servicecidrs")["kubernetes"]
    assert cidr["spec"]["cidrs"] == ["10.43.0.0/16"] and cidr["status"]["conditions"][0]["status"] == "True"


async def test_deleted_and_edited_mandatory_objects_are_restored(keeper) -> None:
    await _settle(keeper)
    levels = keeper.registry.get("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations")
    await keeper.service.delete(levels, None, "exempt", {}, CTX)
    await keeper.service.patch(levels, None, "catch-all", {"spec": {"limited": {"nominalConcurrencyShares": 9}}},
                               "merge", CTX)
    await _settle(keeper)
    restored = _names(keeper, "flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations")
    assert restored["exempt"]["spec"]["type"] == "Exempt"
    assert restored["catch-all"]["spec"]["limited"]["nominalConcurrencyShares"] == 5


async def test_dangling_level_and_ip_mirror(keeper) -> None:
    schemas = keeper.registry.get("flowcontrol.apiserver.k8s.io", "v1", "flowschemas")
    await keeper.service.create(schemas, None, {
        "metadata": {"name": "orphan"},
        "spec": {"priorityLevelConfiguration": {"name": "nope"},
                 "rules": [{"subjects": [{"kind": "Group", "group": {"name": "g"}}],
                            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}]}}, CTX)
    services = keeper.registry.get("", "v1", "services")
    await keeper.service.create(services, "default", {
        "metadata": {"name": "web"}, "spec": {"clusterIP": "10.43.0.50", "ports": [{"port": 80}]}}, CTX)
    await _settle(keeper)
    orphan = _names(keeper, "flowcontrol.apiserver.k8s.io", "flowschemas")["orphan"]
    assert orphan["status"]["conditions"][0]["reason"] == "NotFound"
    ip = _names(keeper, "networking.k8s.io", "ipaddresses")["10.43.0.50"]
    assert ip["spec"]["parentRef"]["name"] == "web"
    await keeper.service.delete(services, "default", "web", {}, CTX)
    await _settle(keeper)
    assert "10.43.0.50" not in _names(keeper, "networking.k8s.io", "ipaddresses")


async def test_a_quiet_store_is_not_rewritten(keeper) -> None:
    await _settle(keeper)
    revision = keeper.cache.revision
    await keeper.sync()
    assert keeper.cache.revision == revision


async def test_an_aggregated_api_service_is_reported_unavailable(keeper) -> None:
    api_services = keeper.registry.get("apiregistration.k8s.io", "v1", "apiservices")
    await keeper.service.create(api_services, None, {
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                 "versionPriority": 100, "insecureSkipTLSVerify": True,
                 "service": {"namespace": "default", "name": "metrics-server"}}}, CTX)
    await _settle(keeper)
    cond = _names(keeper, "apiregistration.k8s.io", "apiservices")["v1beta1.metrics.k8s.io"]["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Available", "False", "ServiceNotFound")
    services = keeper.registry.get("", "v1", "services")
    await keeper.service.create(services, "default", {"metadata": {"name": "metrics-server"},
                                                     "spec": {"ports": [{"port": 443}]}}, CTX)
    await _settle(keeper)
    cond = _names(keeper, "apiregistration.k8s.io", "apiservices")["v1beta1.metrics.k8s.io"]["status"]["conditions"][0]
    assert cond["reason"] == "FailedDiscoveryCheck" and "does not proxy" in cond["message"]


async def test_a_write_to_a_kind_the_rounds_read_wakes_them_and_they_come_to_rest(keeper) -> None:
    keeper.sync_seconds = 3600.0  # only wake-ups run rounds after the first
    await keeper.start()
    try:
        services = keeper.registry.get("", "v1", "services")
        await _until(lambda: "v1.apps" in _names(keeper, "apiregistration.k8s.io", "apiservices"))
        await keeper.service.create(services, "default", {
            "metadata": {"name": "web"}, "spec": {"clusterIP": "10.43.0.60", "ports": [{"port": 80}]}}, CTX)
        await _until(lambda: "10.43.0.60" in _names(keeper, "networking.k8s.io", "ipaddresses"))
        # A mandatory FlowSchema deleted: one round puts it back, the round its write wakes
        # gives it its status.
        schemas = keeper.registry.get("flowcontrol.apiserver.k8s.io", "v1", "flowschemas")
        await keeper.service.delete(schemas, None, "catch-all", {}, CTX)
        await _until(lambda: any(c["type"] == "Dangling" for c in (_names(
            keeper, "flowcontrol.apiserver.k8s.io", "flowschemas").get("catch-all", {}).get("status") or {}).get(
            "conditions") or []))
        # The rounds' own writes wake the next round, which writes nothing: no endless loop.
        revision = -1
        for _ in range(40):
            if keeper.cache.revision == revision:
                break
            revision = keeper.cache.revision
            await asyncio.sleep(0.3)
        else:
            raise AssertionError("the rounds never came to rest")
    finally:
        await keeper.stop()


async def _until(check, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.02)
