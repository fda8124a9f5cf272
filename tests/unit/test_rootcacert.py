"""The root CA publisher keeps `kube-root-ca.crt` in every active namespace."""

from __future__ import annotations

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CONFIGMAPS, NAMESPACES
from kybernetes.controllers.rootcacert import DESCRIPTION, RootCACertPublisher, desired_configmap
from kybernetes.testing.fakes import DELETION_TIMESTAMP, FakeClient, FakeInformers

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _ns(name: str, terminating: bool = False) -> dict:
    meta: dict = {"name": name}
    if terminating:
        meta["deletionTimestamp"] = DELETION_TIMESTAMP
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "status": {"phase": "Terminating" if terminating else "Active"}}


def _publisher(*namespaces: dict) -> tuple[RootCACertPublisher, FakeClient, FakeInformers]:
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(NAMESPACES, *namespaces)
    return RootCACertPublisher(client, informers, CA), client, informers


def test_desired_configmap_rules():
    made = desired_configmap(None, CA)
    assert made["metadata"] == {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": DESCRIPTION}}
    assert made["data"] == {"ca.crt": CA}
    right = {**made, "metadata": {**made["metadata"], "namespace": "a", "resourceVersion": "4"}}
    assert desired_configmap(right, CA) is None
    tampered = {**right, "data": {"ca.crt": "nope", "extra": "x"}}
    fixed = desired_configmap(tampered, CA)
    assert fixed["data"] == {"ca.crt": CA}
    assert fixed["metadata"]["resourceVersion"] == "4"
    # The description annotation is put back; other annotations stay.
    bare = {**right, "metadata": {**right["metadata"], "annotations": {"team": "x"}}}
    assert desired_configmap(bare, CA)["metadata"]["annotations"] == {
        "team": "x", "kubernetes.io/description": DESCRIPTION}


async def test_new_namespace_gets_the_configmap_and_a_second_pass_writes_nothing():
    ctl, client, _ = _publisher(_ns("team-a"))
    assert await ctl.sync("team-a") == Result.done()
    cm = client.stored(CONFIGMAPS, "team-a", "kube-root-ca.crt")
    assert cm is not None and cm["data"] == {"ca.crt": CA}
    writes = len(client.calls_of("create")) + len(client.calls_of("update"))
    assert await ctl.sync("team-a") == Result.done()
    assert len(client.calls_of("create")) + len(client.calls_of("update")) == writes


async def test_a_changed_configmap_is_put_back():
    ctl, client, _ = _publisher(_ns("team-a"))
    await ctl.sync("team-a")
    cm = client.stored(CONFIGMAPS, "team-a", "kube-root-ca.crt")
    await client.update(CONFIGMAPS, "team-a", "kube-root-ca.crt", {**cm, "data": {"ca.crt": "forged"}})
    assert ctl.queue.pending("team-a")  # the update woke the namespace up
    await ctl.sync("team-a")
    assert client.stored(CONFIGMAPS, "team-a", "kube-root-ca.crt")["data"] == {"ca.crt": CA}


async def test_terminating_and_missing_namespaces_are_left_alone():
    ctl, client, _ = _publisher(_ns("going", terminating=True))
    assert await ctl.sync("going") == Result.done()
    assert await ctl.sync("never-existed") == Result.done()
    assert client.calls_of("create") == []


async def test_a_namespace_that_starts_terminating_meanwhile_is_not_an_error():
    ctl, client, _ = _publisher(_ns("racing"))
    client.fail("create", "configmaps", ApiError(403, "Forbidden", "namespace racing is being terminated"))
    assert await ctl.sync("racing") == Result.done()


async def test_a_refusal_by_authorization_is_retried():
    # Not the namespace lifecycle's 403: a rule missing from the controller manager's role,
    # which must not pass silently (the ConfigMap would never be written).
    ctl, client, _ = _publisher(_ns("active"))
    client.fail("create", "configmaps", ApiError(403, "Forbidden", 'configmaps is forbidden: User '
                '"system:kube-controller-manager" cannot create resource "configmaps" in API group "" '
                'in the namespace "active"'))
    with pytest.raises(ApiError):
        await ctl.sync("active")
