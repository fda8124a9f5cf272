"""The built-in local-path provisioner's decisions, shared by the node agent (which makes
real directories) and simulated nodes (which only make the API objects): whether a claim
is this node's to provision, the PersistentVolume it gets and the directory behind it,
whether a released volume is this node's to clean up, and whether a path may be removed.

A claim is provisioned by the agent of the node the scheduler selected for it, never by
reaching into another machine's disk; the PV is pinned to that node by node affinity."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kybernetes.api.storage import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    LOCAL_PATH_PROVISIONER,
    claim_class,
    volume_mode,
)

Obj = dict[str, Any]

HOSTNAME_LABEL = "kubernetes.io/hostname"
STORAGE_DIR = "storage"
# k3s' local-path provisioner makes each volume world-writable so that pods running as
# any user can write; the storage root stays private to root.
VOLUME_DIR_MODE = 0o777
STORAGE_ROOT_MODE = 0o700


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    ann = _meta(obj).get("annotations")
    return ann if isinstance(ann, Mapping) else {}


def storage_root(data_dir: str) -> str:
    """Where a node keeps its local-path volumes."""
    return os.path.join(data_dir, STORAGE_DIR)


def volume_name(pvc: Mapping[str, Any]) -> str:
    """The PV a claim gets: named after the claim's uid, as upstream provisioners do, so a
    second attempt finds the first one's volume instead of making another."""
    return f"pvc-{_meta(pvc).get('uid', '')}"


def directory_name(pv_name: str, pvc: Mapping[str, Any]) -> str:
    """`<pv>_<namespace>_<claim>`, as k3s' local-path provisioner names its directories."""
    meta = _meta(pvc)
    return f"{pv_name}_{meta.get('namespace', '')}_{meta.get('name', '')}"


def claim_provisioner(pvc: Mapping[str, Any]) -> str:
    ann = _annotations(pvc)
    return str(ann.get(ANN_STORAGE_PROVISIONER) or ann.get(ANN_BETA_STORAGE_PROVISIONER) or "")


def claim_to_provision(pvc: Mapping[str, Any], node_name: str) -> bool:
    """The claim waits for a local-path volume on this node: the scheduler selected this
    node for it, the PV controller handed it to this provisioner, and no volume serves it yet."""
    meta = _meta(pvc)
    if meta.get("deletionTimestamp") or _spec(pvc).get("volumeName"):
        return False
    status = pvc.get("status")
    if isinstance(status, Mapping) and status.get("phase") not in (None, "", "Pending"):
        return False
    ann = _annotations(pvc)
    return ann.get(ANN_SELECTED_NODE) == node_name and claim_provisioner(pvc) == LOCAL_PATH_PROVISIONER


def provisioning_problem(pvc: Mapping[str, Any], storage_class: Mapping[str, Any] | None) -> str:
    """Why the claim cannot get a local-path volume ("" when it can): the message of the
    ProvisioningFailed event."""
    cls = claim_class(pvc)
    if storage_class is None:
        return f'storageclass.storage.k8s.io "{cls}" not found'
    if storage_class.get("provisioner") != LOCAL_PATH_PROVISIONER:
        return f'storageclass "{cls}" is provisioned by "{storage_class.get("provisioner")}", not local-path'
    if volume_mode(pvc) != "Filesystem":
        return "local-path volumes only support volumeMode Filesystem"
    return ""


def provisioned_volume(pvc: Mapping[str, Any], storage_class: Mapping[str, Any], node_name: str,
                       path: str) -> Obj:
    """The PersistentVolume for a claim: a local volume at `path`, reachable only from
    `node_name`, with the claim's size, modes and class, the class's reclaim policy, and
    pre-bound to the claim (the PV controller completes the binding)."""
    meta, spec = _meta(pvc), _spec(pvc)
    resources = spec.get("resources") if isinstance(spec.get("resources"), Mapping) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), Mapping) else {}
    pv_spec: Obj = {
        "capacity": {"storage": requests.get("storage", "0")},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "volumeMode": volume_mode(pvc),
        "storageClassName": claim_class(pvc),
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta.get("namespace", ""),
                     "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                     "resourceVersion": meta.get("resourceVersion", "")},
        "local": {"path": path},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME_LABEL, "operator": "In", "values": [node_name]}]}]}},
    }
    if storage_class.get("mountOptions"):
        pv_spec["mountOptions"] = list(storage_class["mountOptions"])
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume_name(pvc), "annotations": {ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER}},
            "spec": pv_spec}


def volume_node(pv: Mapping[str, Any]) -> str:
    """The one node a local-path PV lives on (from its hostname node affinity), or ""."""
    affinity = _spec(pv).get("nodeAffinity")
    required = affinity.get("required") if isinstance(affinity, Mapping) else None
    terms = required.get("nodeSelectorTerms") if isinstance(required, Mapping) else None
    for term in terms if isinstance(terms, list) else ():
        for expr in (term.get("matchExpressions") or []) if isinstance(term, Mapping) else ():
            values = expr.get("values") if isinstance(expr, Mapping) else None
            if (expr.get("key") == HOSTNAME_LABEL and expr.get("operator") == "In" and isinstance(values, list)
                    and len(values) == 1):
                return str(values[0])
    return ""


def volume_path(pv: Mapping[str, Any]) -> str:
    """Where a local or hostPath PV's data is on its node ("" for other volume types)."""
    spec = _spec(pv)
    for key in ("local", "hostPath"):
        source = spec.get(key)
        if isinstance(source, Mapping) and source.get("path"):
            return str(source["path"])
    return ""


def volume_to_delete(pv: Mapping[str, Any], node_name: str) -> bool:
    """A volume this node provisioned whose claim is gone and whose policy is Delete: its
    directory and then the PV object are to be removed."""
    status = pv.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return (phase == "Released" and _annotations(pv).get(ANN_PROVISIONED_BY) == LOCAL_PATH_PROVISIONER
            and _spec(pv).get("persistentVolumeReclaimPolicy") == "Delete" and volume_node(pv) == node_name)


def removable_path(path: str, root: str) -> bool:
    """Only a direct child of the storage root may be removed: a PV naming any other path
    (edited by hand, or `..` tricks) never makes the agent delete data outside it."""
    if not path or not root or not os.path.isabs(path) or not os.path.isabs(root):
        return False
    if any(part in (".", "..") for part in path.split("/")):
        return False
    norm = os.path.normpath(path)
    name = os.path.basename(norm)
    return os.path.dirname(norm) == os.path.normpath(root) and name not in ("", ".", "..")


def pod_claims(pod: Mapping[str, Any]) -> list[str]:
    """The names of the claims a pod's volumes use (in the pod's namespace)."""
    volumes = _spec(pod).get("volumes")
    out = []
    for vol in volumes if isinstance(volumes, list) else ():
        src = vol.get("persistentVolumeClaim") if isinstance(vol, Mapping) else None
        if isinstance(src, Mapping) and src.get("claimName"):
            out.append(str(src["claimName"]))
    return out
