"""The local-path provisioner: its pure decisions (api/localpath.py), the agent's shell on a
real temporary directory, the simulated nodes' shell, and how the agent mounts claims."""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

import pytest

from kybernetes.agent import localpath as agent_lp
from kybernetes.agent.volumes import (
    VolumeError,
    VolumeManager,
    claim_volume,
    container_mounts,
    readonly_volumes,
)
from kybernetes.api import localpath
from kybernetes.api.storage import (
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    LOCAL_PATH_PROVISIONER,
)
from kybernetes.client import InformerFactory
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, STORAGECLASSES
from kybernetes.simnodes.sim import SimulatedNodes
from kybernetes.testing.fakes import FakeClient, until

Obj = dict[str, Any]
NODE = "node-a"


def claim(name: str = "data", node: str | None = NODE, *, provisioner: str = LOCAL_PATH_PROVISIONER,
          volume: str = "", phase: str = "Pending", cls: str = "local-path", mode: str | None = None) -> Obj:
    ann = {ANN_STORAGE_PROVISIONER: provisioner} if provisioner else {}
    if node:
        ann[ANN_SELECTED_NODE] = node
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": cls}
    if volume:
        spec["volumeName"] = volume
    if mode:
        spec["volumeMode"] = mode
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "annotations": ann},
            "spec": spec, "status": {"phase": phase}}


def storage_class(name: str = "local-path", reclaim: str | None = "Delete",
                  provisioner: str = LOCAL_PATH_PROVISIONER) -> Obj:
    sc: Obj = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
               "provisioner": provisioner, "volumeBindingMode": "WaitForFirstConsumer"}
    if reclaim:
        sc["reclaimPolicy"] = reclaim
    return sc


def released(pv: Obj) -> Obj:
    return {**pv, "metadata": {**pv["metadata"], "uid": "pv-uid"}, "status": {"phase": "Released"}}


# -- pure decisions ---------------------------------------------------------------------------


def test_only_the_selected_node_provisions_a_pending_local_path_claim():
    assert localpath.claim_to_provision(claim(), NODE)
    assert not localpath.claim_to_provision(claim(), "node-b")
    assert not localpath.claim_to_provision(claim(node=None), NODE)
    assert not localpath.claim_to_provision(claim(provisioner="ebs.csi.aws.com"), NODE)
    assert not localpath.claim_to_provision(claim(provisioner=""), NODE)
    assert not localpath.claim_to_provision(claim(volume="pvc-x"), NODE)
    assert not localpath.claim_to_provision(claim(phase="Bound"), NODE)
    gone = claim()
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not localpath.claim_to_provision(gone, NODE)


def test_provisioned_volume_is_pinned_to_the_node_and_pre_bound_to_the_claim():
    pvc = claim()
    name = localpath.volume_name(pvc)
    assert name == "pvc-u-data"
    assert localpath.directory_name(name, pvc) == "pvc-u-data_ns_data"
    pv = localpath.provisioned_volume(pvc, storage_class(reclaim="Retain"), NODE, "/d/storage/x")
    assert pv["metadata"] == {"name": "pvc-u-data", "annotations": {ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER}}
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "1Gi"} and spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["storageClassName"] == "local-path" and spec["volumeMode"] == "Filesystem"
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["local"] == {"path": "/d/storage/x"}
    assert spec["claimRef"]["uid"] == "u-data" and spec["claimRef"]["name"] == "data"
    assert localpath.volume_node(pv) == NODE and localpath.volume_path(pv) == "/d/storage/x"
    # A class without a reclaim policy deletes, as upstream's default.
    assert localpath.provisioned_volume(pvc, storage_class(reclaim=None), NODE, "/p")["spec"][
        "persistentVolumeReclaimPolicy"] == "Delete"


def test_provisioning_problems_are_named():
    assert localpath.provisioning_problem(claim(), storage_class()) == ""
    assert "not found" in localpath.provisioning_problem(claim(), None)
    assert "Filesystem" in localpath.provisioning_problem(claim(mode="Block"), storage_class())
    assert "not local-path" in localpath.provisioning_problem(claim(), storage_class(provisioner="other"))


def test_only_released_delete_volumes_of_this_node_are_reclaimed():
    pv = localpath.provisioned_volume(claim(), storage_class(), NODE, "/p")
    assert not localpath.volume_to_delete(pv, NODE)  # no phase yet
    assert localpath.volume_to_delete(released(pv), NODE)
    assert not localpath.volume_to_delete(released(pv), "node-b")
    retain = localpath.provisioned_volume(claim(), storage_class(reclaim="Retain"), NODE, "/p")
    assert not localpath.volume_to_delete(released(retain), NODE)
    static = released(pv)
    static["metadata"] = {"name": "static"}
    assert not localpath.volume_to_delete(static, NODE)


def test_removable_paths_are_direct_children_of_the_root():
    root = "/data/storage"
    assert localpath.removable_path("/data/storage/pvc-1_ns_c", root)
    assert localpath.removable_path("/data/storage/pvc-1_ns_c/", root)
    for bad in ("/data/storage", "/data/storage/", "/data/storage/a/b", "/etc", "/data/storage/../x",
                "/data/storage/a/..", "data/storage/x", "", "/data/storage/."):
        assert not localpath.removable_path(bad, root), bad


# -- the agent's shell on a real directory ----------------------------------------------------


def test_volume_directory_modes(tmp_path):
    root = str(tmp_path / "storage")
    path = agent_lp.make_volume_dir(root, "pvc-1_ns_c")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777
    assert agent_lp.make_volume_dir(root, "pvc-1_ns_c") == path  # a retry reuses it


def test_removal_never_leaves_the_root_nor_follows_links(tmp_path):
    root = tmp_path / "storage"
    root.mkdir()
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep").write_text("x")
    vol = root / "pvc-1_ns_c"
    vol.mkdir()
    (vol / "data").write_text("y")
    (vol / "link").symlink_to(outside)
    agent_lp.remove_volume_dir(str(root), str(vol))
    assert not vol.exists() and (outside / "keep").read_text() == "x"
    # A volume directory replaced by a link: the link goes, its target stays.
    (root / "pvc-2_ns_c").symlink_to(outside)
    agent_lp.remove_volume_dir(str(root), str(root / "pvc-2_ns_c"))
    assert not os.path.lexists(root / "pvc-2_ns_c") and (outside / "keep").exists()
    with pytest.raises(agent_lp.UnsafePathError):
        agent_lp.remove_volume_dir(str(root), str(outside))
    with pytest.raises(agent_lp.UnsafePathError):
        agent_lp.remove_volume_dir(str(root), str(root / ".." / "precious"))
    assert (outside / "keep").exists()
    agent_lp.remove_volume_dir(str(root), str(root / "gone-already"))


async def test_agent_provisions_its_claims_and_reclaims_released_volumes(tmp_path):
    api = FakeClient()
    api.add(STORAGECLASSES, storage_class(), storage_class("keep", reclaim="Retain"))
    factory = InformerFactory(api)
    prov = agent_lp.LocalPathProvisioner(api, factory, NODE, str(tmp_path))
    await factory.start()
    await factory.wait_synced(2)
    task = asyncio.get_running_loop().create_task(prov.run())
    try:
        api.add(PERSISTENTVOLUMECLAIMS, claim("data"), claim("other", node="node-b"), claim("kept", cls="keep"))
        await until(lambda: api.stored(PERSISTENTVOLUMES, None, "pvc-u-kept") is not None
                     and api.stored(PERSISTENTVOLUMES, None, "pvc-u-data") is not None)
        pv = api.stored(PERSISTENTVOLUMES, None, "pvc-u-data")
        path = pv["spec"]["local"]["path"]
        assert path == str(tmp_path / "storage" / "pvc-u-data_ns_data") and os.path.isdir(path)
        assert api.stored(PERSISTENTVOLUMES, None, "pvc-u-other") is None
        assert not os.path.exists(tmp_path / "storage" / "pvc-u-other_ns_other")
        assert ("ProvisioningSucceeded", "Successfully provisioned volume pvc-u-data") in [
            (e.reason, e.message) for e in api.events if e.name == "data"]
        # The claim goes, the binder releases the volumes: Delete removes, Retain keeps.
        with open(os.path.join(path, "f"), "w") as f:
            f.write("z")
        kept = api.stored(PERSISTENTVOLUMES, None, "pvc-u-kept")
        api.add(PERSISTENTVOLUMES, released(pv), released(kept))
        await until(lambda: api.stored(PERSISTENTVOLUMES, None, "pvc-u-data") is None)
        assert not os.path.exists(path)
        await asyncio.sleep(0.1)
        assert api.stored(PERSISTENTVOLUMES, None, "pvc-u-kept") is not None
        assert os.path.isdir(kept["spec"]["local"]["path"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await factory.stop()


async def test_agent_refuses_to_remove_a_path_outside_its_storage(tmp_path):
    api = FakeClient()
    factory = InformerFactory(api)
    prov = agent_lp.LocalPathProvisioner(api, factory, NODE, str(tmp_path / "agent"))
    victim = tmp_path / "victim"
    victim.mkdir()
    pv = released(localpath.provisioned_volume(claim(), storage_class(), NODE, str(victim)))
    api.add(PERSISTENTVOLUMES, pv)
    await factory.start()
    await factory.wait_synced(2)
    try:
        await prov.sync("volume:pvc-u-data")
        assert victim.is_dir() and api.stored(PERSISTENTVOLUMES, None, "pvc-u-data") is not None
        assert [e.reason for e in api.events] == ["VolumeFailedDelete"]
    finally:
        await factory.stop()


# -- simulated nodes ------------------------------------------------------------------------


async def test_sim_nodes_provision_and_hold_pods_until_their_claims_are_bound():
    api = FakeClient()
    api.add(STORAGECLASSES, storage_class())
    factory = InformerFactory(api)
    sim = SimulatedNodes(api, factory, 2, start_delay=0.01, lease_interval=5, jitter=0.0, delete_delay=0.01, seed=1)
    await factory.start()
    await factory.wait_synced(2)
    task = asyncio.get_running_loop().create_task(sim.run())
    try:
        await sim.wait_registered(3)
        pvc = claim("www", node="sim-node-1")
        api.add(PERSISTENTVOLUMECLAIMS, pvc)
        api.add(PODS, {"metadata": {"name": "web-0", "namespace": "ns", "uid": "p1"},
                       "spec": {"nodeName": "sim-node-1", "containers": [{"name": "c", "image": "x"}],
                                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "www"}}]},
                       "status": {"phase": "Pending"}})
        await until(lambda: api.stored(PERSISTENTVOLUMES, None, "pvc-u-www") is not None)
        pv = api.stored(PERSISTENTVOLUMES, None, "pvc-u-www")
        assert localpath.volume_node(pv) == "sim-node-1"
        await asyncio.sleep(0.2)
        assert api.stored(PODS, "ns", "web-0")["status"]["phase"] == "Pending"
        # The binder completes the binding: now the pod starts.
        api.add(PERSISTENTVOLUMECLAIMS, {**pvc, "spec": {**pvc["spec"], "volumeName": "pvc-u-www"},
                                         "status": {"phase": "Bound"}})
        await until(lambda: api.stored(PODS, "ns", "web-0")["status"].get("phase") == "Running")
        api.add(PERSISTENTVOLUMES, released(pv))
        await until(lambda: api.stored(PERSISTENTVOLUMES, None, "pvc-u-www") is None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await factory.stop()


# -- mounting claims --------------------------------------------------------------------------


def test_claim_volume_says_why_a_pod_waits(tmp_path):
    with pytest.raises(VolumeError, match='persistentvolumeclaim "data" not found'):
        claim_volume("data", None, None)
    with pytest.raises(VolumeError, match='persistentvolumeclaim "data" is not bound'):
        claim_volume("data", claim(), None)
    bound = claim(volume="pvc-u-data", phase="Bound")
    with pytest.raises(VolumeError, match='persistentvolume "pvc-u-data" of claim "data" not found'):
        claim_volume("data", bound, None)
    pv = localpath.provisioned_volume(claim(), storage_class(), NODE, str(tmp_path))
    assert claim_volume("data", bound, pv) == ("local", str(tmp_path))
    other = {**pv, "spec": {**pv["spec"], "claimRef": {"uid": "someone-else"}}}
    with pytest.raises(VolumeError, match="another claim"):
        claim_volume("data", bound, other)
    host = {"metadata": {"name": "h"}, "spec": {"hostPath": {"path": "/srv"}, "capacity": {"storage": "1Gi"}}}
    assert claim_volume("data", bound, host) == ("hostPath", "/srv")
    nfs = {"metadata": {"name": "n"}, "spec": {"nfs": {"server": "x", "path": "/"}}}
    with pytest.raises(VolumeError, match="only local and hostPath"):
        claim_volume("data", bound, nfs)


async def test_volume_manager_mounts_a_bound_claims_directory(tmp_path):
    data = tmp_path / "vol"
    data.mkdir()
    bound = claim(volume="pvc-u-data", phase="Bound")
    pv = localpath.provisioned_volume(claim(), storage_class(), NODE, str(data))
    objects = {("PersistentVolumeClaim", "data"): bound, ("PersistentVolume", "pvc-u-data"): pv}

    async def fetch(kind: str, _ns: str, name: str) -> Obj | None:
        return objects.get((kind, name))

    vm = VolumeManager(str(tmp_path / "pods"), fetch, {})
    pod = {"metadata": {"uid": "p", "namespace": "ns"},
           "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}]}}
    assert await vm.setup(pod) == {"v": str(data)}
    assert readonly_volumes(pod) == frozenset({"v"})
    del objects[("PersistentVolumeClaim", "data")]
    with pytest.raises(VolumeError, match='MountVolume.SetUp failed for volume "v" : persistentvolumeclaim "data" '
                                          'not found'):
        await vm.setup(pod)
    # A local PV whose directory is not on this node cannot be mounted here.
    objects[("PersistentVolumeClaim", "data")] = bound
    data.rmdir()
    with pytest.raises(VolumeError, match="does not exist on this node"):
        await vm.setup(pod)


def test_container_mounts_honour_readonly_sources_and_keep_subpaths_inside(tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "escape").symlink_to(tmp_path)
    container = {"volumeMounts": [{"name": "v", "mountPath": "/a"},
                                  {"name": "v", "mountPath": "/b", "subPath": "sub/dir"}]}
    mounts = container_mounts(container, {"v": str(vol)}, frozenset({"v"}))
    assert [(m.container_path, m.host_path, m.readonly) for m in mounts] == [
        ("/a", str(vol), True), ("/b", str(vol / "sub" / "dir"), True)]
    assert (vol / "sub" / "dir").is_dir()
    assert not container_mounts(container, {"v": str(vol)})[0].readonly
    with pytest.raises(VolumeError, match="leads outside the volume"):
        container_mounts({"volumeMounts": [{"name": "v", "mountPath": "/c", "subPath": "escape"}]}, {"v": str(vol)})
