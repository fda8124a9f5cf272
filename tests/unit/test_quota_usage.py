"""ResourceQuota admission and status on a real store and watch cache: the use kept from
the cache's events (kybernetes/apiserver/quota.py QuotaUsage) matches a recount."""

from __future__ import annotations

import pytest

from kybernetes.api import quota as q
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry
from kybernetes.apiserver.quota import QuotaAdmission, QuotaStatus, usage_for
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.testing.resourceservice import resource_service

CTX = WriteContext(field_manager="test")
REG = Registry()
PODS = REG.get("", "v1", "pods")
QUOTAS = REG.get("", "v1", "resourcequotas")
NAMESPACES = REG.get("", "v1", "namespaces")


@pytest.fixture
async def service(tmp_path):
    async with resource_service(tmp_path, namespaces=()) as service:
        service.create_admission.append(QuotaAdmission(service.cache).check_create)
        await service.create(NAMESPACES, None, {"metadata": {"name": "ns"}}, CTX)
        yield service


def pod(name: str, cpu: str | None = None, **spec) -> dict:
    res = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}} if cpu else {}
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "pause", "resources": res}], **spec}}


def recount(service: ResourceService, name: str) -> dict[str, str]:
    quota = service.cache.get(QUOTAS.key("ns", name)).obj
    pods = [co.obj for co in service.cache.list(PODS.storage_prefix() + "ns/")]
    return q.namespace_usage(quota, {("", "pods"): pods})


def kept(service: ResourceService, name: str) -> dict[str, str]:
    co = service.cache.get(QUOTAS.key("ns", name))
    used = usage_for(service.cache).used(co.key, co.obj)
    return {n: q.format_quantity(n, v) for n, v in used.items()}


async def settle(service: ResourceService) -> None:
    """Until the cache has seen every write so far (a throwaway write's revision)."""
    res = await service.create(REG.get("", "v1", "configmaps"), "ns",
                               {"metadata": {"generateName": "mark-", "namespace": "ns"}}, CTX)
    await service.cache.wait_for(int(res.obj["metadata"]["resourceVersion"]))


async def test_kept_use_follows_creates_changes_and_deletes(service) -> None:
    await service.create(QUOTAS, "ns", {"metadata": {"name": "q", "namespace": "ns"},
                                        "spec": {"hard": {"pods": "3", "cpu": "1"}}}, CTX)
    be = {"metadata": {"name": "be", "namespace": "ns"},
          "spec": {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}}
    await service.create(QUOTAS, "ns", be, CTX)
    await service.create(PODS, "ns", pod("a", "300m"), CTX)
    await service.create(PODS, "ns", pod("b", "300m"), CTX)
    await settle(service)
    assert kept(service, "q") == recount(service, "q") == {"pods": "2", "cpu": "600m"}
    with pytest.raises(ApiError) as e:
        await service.create(PODS, "ns", pod("c", "500m"), CTX)
    assert e.value.message == ('pods "c" is forbidden: exceeded quota: q, requested: cpu=500m, used: cpu=600m, '
                               "limited: cpu=1")
    # A finished pod stops counting: its status change is an event like any other.
    done = service.cache.get(PODS.key("ns", "a")).obj
    await service.update(PODS, "ns", "a", {**done, "status": {"phase": "Succeeded"}}, CTX, "status")
    await settle(service)
    assert kept(service, "q") == recount(service, "q") == {"pods": "1", "cpu": "300m"}
    await service.create(PODS, "ns", pod("c", "500m"), CTX)
    await service.delete(PODS, "ns", "b", {"gracePeriodSeconds": 0}, CTX)
    await settle(service)
    assert kept(service, "q") == recount(service, "q")
    assert kept(service, "be") == recount(service, "be") == {"pods": "0"}
    # A changed spec is counted again.
    cur = service.cache.get(QUOTAS.key("ns", "q")).obj
    await service.update(QUOTAS, "ns", "q", {**cur, "spec": {"hard": {"pods": "3", "limits.cpu": "2"}}}, CTX)
    await settle(service)
    assert kept(service, "q") == recount(service, "q") == {"pods": "1", "limits.cpu": "500m"}


async def test_status_is_written_from_the_kept_use(service) -> None:
    status = QuotaStatus(REG, service.cache, service)
    await service.create(QUOTAS, "ns", {"metadata": {"name": "q", "namespace": "ns"},
                                        "spec": {"hard": {"pods": "3"}}}, CTX)
    await service.create(PODS, "ns", pod("a"), CTX)
    await settle(service)
    await status.sync("ns")
    assert service.cache.get(QUOTAS.key("ns", "q")).obj["status"] == {"hard": {"pods": "3"}, "used": {"pods": "1"}}


async def test_updates_that_add_use_are_charged(service) -> None:
    quota_admission = QuotaAdmission(service.cache)
    service.update_admission.append(quota_admission.check_update)
    services = REG.get("", "v1", "services")
    await service.create(QUOTAS, "ns", {"metadata": {"name": "q", "namespace": "ns"},
                                        "spec": {"hard": {"services.nodeports": "1", "pods": "5"}}}, CTX)
    await service.create(services, "ns", {"metadata": {"name": "a", "namespace": "ns"},
                                          "spec": {"type": "NodePort", "ports": [{"port": 80}]}}, CTX)
    await service.create(services, "ns", {"metadata": {"name": "b", "namespace": "ns"},
                                          "spec": {"ports": [{"port": 80}]}}, CTX)
    await settle(service)
    b = service.cache.get(services.key("ns", "b")).obj
    with pytest.raises(ApiError) as e:
        await service.update(services, "ns", "b", {**b, "spec": {**b["spec"], "type": "NodePort"}}, CTX)
    assert e.value.code == 403
    assert e.value.message == ('services "b" is forbidden: exceeded quota: q, requested: services.nodeports=1, '
                               "used: services.nodeports=1, limited: services.nodeports=1")
    # An update that adds nothing passes, whatever the namespace uses.
    a = service.cache.get(services.key("ns", "a")).obj
    await service.update(services, "ns", "a", {**a, "metadata": {**a["metadata"], "labels": {"x": "y"}}}, CTX)
    # A pod entering a Terminating-scoped quota is charged for it.
    await service.create(QUOTAS, "ns", {"metadata": {"name": "term", "namespace": "ns"},
                                        "spec": {"hard": {"pods": "0"}, "scopes": ["Terminating"]}}, CTX)
    await service.create(PODS, "ns", pod("p"), CTX)
    await settle(service)
    p = service.cache.get(PODS.key("ns", "p")).obj
    with pytest.raises(ApiError) as e:
        await service.update(PODS, "ns", "p", {**p, "spec": {**p["spec"], "activeDeadlineSeconds": 60}}, CTX)
    assert "exceeded quota: term, requested: pods=1, used: pods=0, limited: pods=0" in e.value.message


async def test_a_reservation_never_settled_stops_counting(service) -> None:
    now = [100.0]
    admission = QuotaAdmission(service.cache, clock=lambda: now[0])
    await service.create(QUOTAS, "ns", {"metadata": {"name": "q", "namespace": "ns"},
                                        "spec": {"hard": {"pods": "1"}}}, CTX)
    await settle(service)
    # Admitted, then refused by a later step: nobody settles the reservation.
    assert admission.check_create(PODS, pod("a")) is not None
    with pytest.raises(ApiError):
        admission.check_create(PODS, pod("b"))
    now[0] += 31
    assert admission.check_create(PODS, pod("b")) is not None
