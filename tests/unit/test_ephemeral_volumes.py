"""Generic ephemeral volumes: the controller makes each volume's claim `<pod>-<volume>` from
its template, owned by the pod, leaves a claim of that name it does not own alone, makes a
deleted claim again; the node agent mounts the pod's own claim and refuses another's."""

from __future__ import annotations

from pathlib import Path

import pytest

from kybernetes.agent.volumes import VolumeError, VolumeManager
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PODS
from kybernetes.controllers.ephemeralvolume import EphemeralVolumeController, wanted_claims
from kybernetes.testing.fakes import FakeClient, FakeInformers, pod

TEMPLATE = {"metadata": {"labels": {"app": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "1Gi"}}}}


def _pod(**kw: object) -> dict:
    return pod("web", "ns", uid="pod-uid", volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": TEMPLATE}},
                                                    {"name": "tmp", "emptyDir": {}}], **kw)


def test_the_claims_a_pod_wants() -> None:
    (claim,) = wanted_claims(_pod())
    assert claim["metadata"] == {"name": "web-scratch", "namespace": "ns", "labels": {"app": "db"},
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web",
                                                      "uid": "pod-uid", "controller": True,
                                                      "blockOwnerDeletion": True}]}
    assert claim["spec"] == TEMPLATE["spec"]
    assert wanted_claims(_pod(deleting=True)) == []


async def test_the_controller_creates_a_missing_claim_once() -> None:
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(PODS, _pod())
    ctl = EphemeralVolumeController(client, informers)
    await ctl.sync("ns/web")
    stored = client.stored(PERSISTENTVOLUMECLAIMS, "ns", "web-scratch")
    assert stored is not None and stored["metadata"]["ownerReferences"][0]["uid"] == "pod-uid"
    creates = [c for c in client.calls if c.verb == "create"]
    await ctl.sync("ns/web")
    assert [c for c in client.calls if c.verb == "create"] == creates


async def test_a_claim_of_that_name_owned_by_another_is_left_alone() -> None:
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(PERSISTENTVOLUMECLAIMS, {"metadata": {"name": "web-scratch", "namespace": "ns"}, "spec": {}})
    client.add(PODS, _pod())
    ctl = EphemeralVolumeController(client, informers)
    await ctl.sync("ns/web")
    assert not [c for c in client.calls if c.verb == "create"]


async def test_the_agent_mounts_only_the_pods_own_claim(tmp_path: Path) -> None:
    data = tmp_path / "pv"
    data.mkdir()
    claim = {"metadata": {"name": "web-scratch", "namespace": "ns", "ownerReferences": [
        {"kind": "Pod", "name": "web", "uid": "pod-uid", "controller": True}]},
             "spec": {"volumeName": "pv"}, "status": {"phase": "Bound"}}
    objects = {("PersistentVolumeClaim", "ns", "web-scratch"): claim,
               ("PersistentVolume", "", "pv"): {"metadata": {"name": "pv"}, "spec": {
                   "local": {"path": str(data)}, "volumeMode": "Filesystem",
                   "claimRef": {"name": "web-scratch", "namespace": "ns"}}}}

    async def fetch(kind: str, ns: str, name: str) -> dict | None:
        return objects.get((kind, ns, name))

    manager = VolumeManager(str(tmp_path / "pods"), fetch, {})
    paths = await manager.setup(_pod())
    assert paths["scratch"] == str(data)
    claim["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    with pytest.raises(VolumeError, match=r"PVC ns/web-scratch was not created for pod ns/web \(pod is not owner\)"):
        await manager.setup(_pod())


def test_the_controller_managers_pod_view_keeps_ephemeral_volumes() -> None:
    from kybernetes.controllers.podutil import controller_view

    view = controller_view(_pod())
    assert view["spec"]["volumes"] == [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": TEMPLATE}}]
    assert wanted_claims(view) == wanted_claims(_pod())
