"""Pod volumes on the node: emptyDir (disk or tmpfs), hostPath with its type checks,
persistentVolumeClaim (the bound PV's local or hostPath directory), and files projected
from ConfigMaps, Secrets and the downward API (configMap, secret, downwardAPI and
projected volumes), written atomically so that containers see a changed object as a whole,
and ServiceAccount tokens in projected volumes (requested bound to the pod, refreshed at 80%
of their life or after 24 h), owned as the kubelet owns them (a token by the pods' one
runAsUser, everything by the pod's fsGroup). What files a volume holds is decided by pure functions;
`VolumeManager` writes, mounts and removes them under the pod's directory."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kybernetes.agent.eviction import memory_empty_dir_size
from kybernetes.agent.ownership import change_ownership, change_policy
from kybernetes.agent.podspec import EnvError, expand, field_ref_value, format_map, resource_ref_value
from kybernetes.api.localpath import volume_path
from kybernetes.api.storage import claim_is_bound, volume_mode

Obj = dict[str, Any]
Fetch = Callable[[str, str, str], Awaitable[Obj | None]]  # (kind, namespace, name) -> object or None
# (pod, audience, expirationSeconds) -> (token, its expiry as a Unix time); VolumeError when refused.
TokenFetch = Callable[[Obj, str, int], Awaitable[tuple[str, float]]]

DEFAULT_MODE = 0o644


class VolumeError(Exception):
    """A volume cannot be set up (MountVolume.SetUp failed): the pod waits."""


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: str
    readonly: bool


# -- what a volume holds ----------------------------------------------------------------------


def _data_of(kind: str, obj: Obj) -> dict[str, bytes]:
    if kind == "ConfigMap":
        out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def object_files(kind: str, name: str, obj: Obj | None, source: Obj, default_mode: int) -> dict[str, tuple[bytes, int]]:
    """Files from a ConfigMap or Secret: every key, or the listed `items` (path, mode)."""
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data = _data_of(kind, obj)
    items = source.get("items")
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"configmap references non-existent config key: {key}" if kind == "ConfigMap"
                              else f"references non-existent secret key: {key}")
        out[item.get("path") or key] = (data[key], item.get("mode", default_mode))
    return out


def downward_files(pod: Obj, items: list[Obj], default_mode: int,
                   node_allocatable: dict[str, str]) -> dict[str, tuple[bytes, int]]:
    out = {}
    spec = pod.get("spec") or {}
    containers = {c.get("name"): c for key in ("containers", "initContainers") for c in spec.get(key) or []}
    for item in items:
        path = item.get("path", "")
        mode = item.get("mode", default_mode)
        try:
            if item.get("fieldRef"):
                field_path = item["fieldRef"].get("fieldPath", "")
                if field_path in ("metadata.labels", "metadata.annotations"):
                    text = format_map((pod.get("metadata") or {}).get(field_path.split(".")[1]) or {})
                else:
                    text = field_ref_value(pod, field_path)
            elif item.get("resourceFieldRef"):
                ref = item["resourceFieldRef"]
                # Validation asks for containerName; a pod stored without one reads its first container.
                container = containers.get(ref.get("containerName")) or next(iter(containers.values()), {})
                text = resource_ref_value(container, ref, node_allocatable)
            else:
                continue
        except EnvError as e:
            raise VolumeError(str(e)) from None
        out[path] = (text.encode(), mode)
    return out


def claim_volume(claim_name: str, pvc: Obj | None, pv: Obj | None) -> tuple[str, str]:
    """What a persistentVolumeClaim volume mounts: ("local" or "hostPath", the path on this
    node) of the PV the claim is bound to; VolumeError says why the pod has to wait."""
    if pvc is None:
        raise VolumeError(f'persistentvolumeclaim "{claim_name}" not found')
    meta = pvc.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        raise VolumeError(f'persistentvolumeclaim "{claim_name}" is being deleted')
    if not claim_is_bound(pvc):
        raise VolumeError(f'persistentvolumeclaim "{claim_name}" is not bound')
    pv_name = (pvc.get("spec") or {}).get("volumeName", "")
    if pv is None:
        raise VolumeError(f'persistentvolume "{pv_name}" of claim "{claim_name}" not found')
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    if ref.get("uid") and ref.get("uid") != meta.get("uid"):
        raise VolumeError(f'persistentvolume "{pv_name}" is bound to another claim than "{claim_name}"')
    if volume_mode(pv) != "Filesystem":
        raise VolumeError(f'persistentvolume "{pv_name}": volumeMode {volume_mode(pv)} is not supported by this node')
    spec = pv.get("spec") or {}
    kind = "local" if "local" in spec else "hostPath" if "hostPath" in spec else ""
    path = volume_path(pv)
    if not kind or not path:
        raise VolumeError(f'persistentvolume "{pv_name}": only local and hostPath volumes can be mounted '
                          "by this node")
    return kind, path


def fs_user(pod: Obj) -> int | None:
    """The user that owns a projected token file, as the kubelet picks it: the one UID every
    (init) container runs as, or None when a container names none or they differ."""
    spec = pod.get("spec") or {}
    pod_user = (spec.get("securityContext") or {}).get("runAsUser")
    users = {(c.get("securityContext") or {}).get("runAsUser", pod_user)
             for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])}
    if len(users) != 1:
        return None
    return next(iter(users))


def fs_group(pod: Obj) -> int | None:
    return ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")


def token_mode(default_mode: int, user: int | None, group: int | None) -> int:
    """A projected token is readable by its owner only once the pod names who that is
    (runAsUser or fsGroup), not by everyone as the volume's default mode would allow."""
    return 0o600 if user is not None or group is not None else default_mode


def with_fs_group(files: dict[str, tuple[bytes, int]], group: int | None) -> dict[str, tuple[bytes, int]]:
    """The modes after the kubelet's volume ownership change for `fsGroup`: the group may
    read every file of a read-only (projected, configMap, secret, downwardAPI) volume."""
    if group is None:
        return files
    return {rel: (data, mode | 0o440) for rel, (data, mode) in files.items()}


def token_needs_refresh(issued: float, expires: float, now: float, max_age: float = 24 * 3600) -> bool:
    """Whether a projected token is due for a new one, as the kubelet decides: past 80%
    of its life, or older than a day whatever its life."""
    return now >= issued + 0.8 * (expires - issued) or now - issued >= max_age


def readonly_volumes(pod: Obj) -> frozenset[str]:
    """Volumes whose source says readOnly (a claim mounted read-only): every mount of them is."""
    return frozenset(v.get("name", "") for v in (pod.get("spec") or {}).get("volumes") or []
                     if ((v.get("persistentVolumeClaim") or {}).get("readOnly")))


def ephemeral_claim(pod: Obj, volume: str) -> str:
    """The claim of a generic ephemeral volume: `<pod>-<volume>`, made by the controller."""
    return f"{(pod.get('metadata') or {}).get('name', '')}-{volume}"


def owned_by_pod(claim: Obj, pod: Obj) -> bool:
    uid = (pod.get("metadata") or {}).get("uid")
    return any(ref.get("uid") == uid and ref.get("controller") for ref in
               (claim.get("metadata") or {}).get("ownerReferences") or [])


def block_device_error(pod: Obj) -> str:
    """Why the node cannot give a container the raw block devices it asks for
    (`volumeDevices`): no block volume support here ("" when none is asked for)."""
    for key in ("initContainers", "containers"):
        for c in (pod.get("spec") or {}).get(key) or []:
            for dev in c.get("volumeDevices") or []:
                return (f'MapVolume.MapPodDevice failed for volume "{dev.get("name", "")}" : block volumes '
                        f"(volumeDevices of container {c.get('name', '')}) are not supported by this node")
    return ""


def safe_relative(path: str) -> bool:
    """A path inside the volume: relative, no `..` element."""
    return bool(path) and not os.path.isabs(path) and ".." not in path.split("/")


# -- on the node --------------------------------------------------------------------------------


def write_atomically(directory: str, files: dict[str, tuple[bytes, int]],
                     owners: dict[str, int] | None = None, group: int | None = None) -> None:
    """Kubernetes' atomic writer: the files go into a fresh timestamped directory, the
    `..data` link is swapped to it in one rename, and each top-level name is a link
    through `..data`; readers see the old set or the new, never a mix. A file in `owners`
    belongs to that user; with `group` (the pod's fsGroup) everything belongs to that group
    and directories pass it on (setgid)."""
    os.makedirs(directory, exist_ok=True)
    if group is not None:
        _own_dir(directory, group)
    if _current_files(directory) == files:
        return
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    fresh = os.path.join(directory, stamp)
    os.makedirs(fresh)
    if group is not None:
        _own_dir(fresh, group)
    for rel, (data, mode) in files.items():
        if not safe_relative(rel):
            raise VolumeError(f"invalid path {rel!r}")
        target = os.path.join(fresh, rel)
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent)
            if group is not None:
                for d in _dirs_between(fresh, parent):
                    _own_dir(d, group)
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, mode)
        uid = (owners or {}).get(rel)
        if uid is not None or group is not None:
            os.chown(target, -1 if uid is None else uid, -1 if group is None else group)
    tmp_link = os.path.join(directory, "..data_tmp")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(stamp, tmp_link)
    os.rename(tmp_link, os.path.join(directory, "..data"))
    tops = {rel.split("/", 1)[0] for rel in files}
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if entry.startswith(".."):
            if entry not in ("..data", stamp) and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
        elif entry not in tops and os.path.islink(path):
            os.unlink(path)
    for top in tops:
        link = os.path.join(directory, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", top), link)


def _own_dir(path: str, group: int) -> None:
    os.chown(path, -1, group)
    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | 0o550 | stat.S_ISGID)


def _dirs_between(top: str, leaf: str) -> list[str]:
    """`leaf` and its parents below `top`."""
    out = []
    while leaf != top and leaf.startswith(top + "/"):
        out.append(leaf)
        leaf = os.path.dirname(leaf)
    return out


def _current_files(directory: str) -> dict[str, tuple[bytes, int]] | None:
    data = os.path.join(directory, "..data")
    if not os.path.isdir(data):
        return None
    out = {}
    for dirpath, _dirs, names in os.walk(data, followlinks=True):
        for n in names:
            full = os.path.join(dirpath, n)
            with open(full, "rb") as f:
                out[os.path.relpath(full, data)] = (f.read(), stat.S_IMODE(os.stat(full).st_mode))
    return out


def check_host_path(path: str, type_: str) -> None:
    """hostPath `type` checks, creating what *OrCreate asks for."""
    if type_ == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
        return
    if type_ == "FileOrCreate":
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            with open(path, "a"):
                pass
        return
    if not type_:
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VolumeError(f"hostPath type check failed: {path} is not a {_kind_word(type_)}") from None
    checks = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
              "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}
    check = checks.get(type_)
    if check is not None and not check(mode):
        raise VolumeError(f"hostPath type check failed: {path} is not a {_kind_word(type_)}")


def _kind_word(type_: str) -> str:
    return {"Directory": "directory", "File": "file", "Socket": "socket", "CharDevice": "character device",
            "BlockDevice": "block device"}.get(type_, type_)


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class VolumeManager:
    """The volumes of the pods on this node, under `root/<pod uid>/volumes`."""

    def __init__(self, root: str, fetch: Fetch, node_allocatable: dict[str, str],
                 token: TokenFetch | None = None, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.fetch = fetch
        self.node_allocatable = node_allocatable
        self.token = token
        self.clock = clock
        # (pod uid, audience, expirationSeconds) -> (token, issued at, expires at)
        self._tokens: dict[tuple[str, str, int], tuple[str, float, float]] = {}
        # (pod uid, volume name) of claims already given to the pod's fsGroup: the kubelet
        # changes ownership when it mounts a volume, not at every sync.
        self._owned: set[tuple[str, str]] = set()

    async def _service_account_token(self, pod: Obj, source: Obj) -> str:
        audience = source.get("audience") or ""
        seconds = int(source.get("expirationSeconds") or 3600)
        key = ((pod.get("metadata") or {}).get("uid", ""), audience, seconds)
        held = self._tokens.get(key)
        now = self.clock()
        if held is not None and not token_needs_refresh(held[1], held[2], now):
            return held[0]
        if self.token is None:
            raise VolumeError("this node cannot request service account tokens")
        try:
            token, expires = await self.token(pod, audience, seconds)
        except VolumeError:
            if held is not None and now < held[2]:
                return held[0]  # keep serving the old one while it is good; retried next sync
            raise
        self._tokens[key] = (token, now, expires)
        return token

    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.root, uid)

    async def setup(self, pod: Obj) -> dict[str, str]:
        """Create or refresh every volume of `pod`; returns volume name -> host path."""
        meta = pod.get("metadata") or {}
        uid, ns = meta.get("uid", ""), meta.get("namespace", "")
        base = os.path.join(self.pod_dir(uid), "volumes")
        paths: dict[str, str] = {}
        blocked = block_device_error(pod)
        if blocked:
            raise VolumeError(blocked)
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol.get("name", "")
            try:
                paths[name] = await self._setup_one(pod, ns, base, vol)
            except VolumeError as e:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}') from None
        return paths

    async def _setup_one(self, pod: Obj, ns: str, base: str, vol: Obj) -> str:
        name = vol.get("name", "")
        if "hostPath" in vol:
            hp = vol["hostPath"]
            check_host_path(hp.get("path", ""), hp.get("type") or "")
            return hp.get("path", "")
        if "persistentVolumeClaim" in vol or "ephemeral" in vol:
            ephemeral = "ephemeral" in vol
            claim = ephemeral_claim(pod, name) if ephemeral else (vol["persistentVolumeClaim"] or {}).get("claimName", "")
            pvc = await self.fetch("PersistentVolumeClaim", ns, claim)
            if ephemeral and pvc is not None and not owned_by_pod(pvc, pod):
                raise VolumeError(f"PVC {ns}/{claim} was not created for pod {ns}/{(pod.get('metadata') or {}).get('name', '')} "
                                  "(pod is not owner)")
            pv_name = ((pvc or {}).get("spec") or {}).get("volumeName") or ""
            pv = await self.fetch("PersistentVolume", "", pv_name) if pvc is not None and pv_name else None
            kind, path = claim_volume(claim, pvc, pv)
            if kind == "hostPath":
                check_host_path(path, (pv or {}).get("spec", {}).get("hostPath", {}).get("type") or "")
            elif not os.path.isdir(path):
                # A local volume's directory is made by whoever provisioned it, on its own node.
                raise VolumeError(f"path {path} does not exist on this node")
            await self._own_claim(pod, name, path, kind, bool((vol.get("persistentVolumeClaim") or {}).get("readOnly")))
            return path
        if "emptyDir" in vol:
            path = os.path.join(base, "empty-dir", name)
            os.makedirs(path, exist_ok=True)
            ed = vol["emptyDir"] or {}
            if ed.get("medium") == "Memory" and not _mounted(path):
                opts = "mode=1777"  # tmpfs's own default, which the kubelet keeps
                size = memory_empty_dir_size(pod, ed.get("sizeLimit"), self.node_allocatable.get("memory"))
                if size:
                    opts += f",size={size}"
                subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], check=True, capture_output=True)
            else:
                os.chmod(path, 0o777)
            group = fs_group(pod)
            if group is not None:
                # What the pod's containers create here belongs to its fsGroup (setgid directory).
                os.chown(path, -1, group)
                os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | 0o770 | stat.S_ISGID)
            return path
        files: dict[str, tuple[bytes, int]] = {}
        owners: dict[str, int] = {}
        if "configMap" in vol or "secret" in vol:
            kind = "ConfigMap" if "configMap" in vol else "Secret"
            src = vol["configMap"] if kind == "ConfigMap" else vol["secret"]
            obj_name = src.get("name") or src.get("secretName") or ""
            mode = src.get("defaultMode", DEFAULT_MODE)
            files = object_files(kind, obj_name, await self.fetch(kind, ns, obj_name), src, mode)
            plugin = "configmap" if kind == "ConfigMap" else "secret"
        elif "downwardAPI" in vol:
            src = vol["downwardAPI"]
            files = downward_files(pod, src.get("items") or [], src.get("defaultMode", DEFAULT_MODE),
                                   self.node_allocatable)
            plugin = "downward-api"
        elif "projected" in vol:
            src = vol["projected"]
            mode = src.get("defaultMode", DEFAULT_MODE)
            for source in src.get("sources") or []:
                if "configMap" in source or "secret" in source:
                    kind = "ConfigMap" if "configMap" in source else "Secret"
                    s = source["configMap"] if kind == "ConfigMap" else source["secret"]
                    files.update(object_files(kind, s.get("name", ""), await self.fetch(kind, ns, s.get("name", "")),
                                              s, mode))
                elif "downwardAPI" in source:
                    files.update(downward_files(pod, source["downwardAPI"].get("items") or [], mode,
                                                self.node_allocatable))
                elif "serviceAccountToken" in source:
                    s = source["serviceAccountToken"]
                    token = await self._service_account_token(pod, s)
                    user = fs_user(pod)
                    rel = s.get("path") or "token"
                    files[rel] = (token.encode(), token_mode(mode, user, fs_group(pod)))
                    if user is not None:
                        owners[rel] = user
            plugin = "projected"
        else:
            raise VolumeError("volume type not supported by this node")
        path = os.path.join(base, plugin, name)
        group = fs_group(pod)
        write_atomically(path, with_fs_group(files, group), owners, group)
        return path

    async def _own_claim(self, pod: Obj, name: str, path: str, kind: str, read_only: bool) -> None:
        """A local volume (not a hostPath one, as the kubelet's plugins) mounted writable
        goes to the pod's fsGroup once, by its fsGroupChangePolicy."""
        group = fs_group(pod)
        key = ((pod.get("metadata") or {}).get("uid", ""), name)
        if kind != "local" or group is None or read_only or key in self._owned:
            return
        try:
            await asyncio.to_thread(change_ownership, path, int(group), change_policy(pod))
        except OSError as e:
            raise VolumeError(f"failed to set volume ownership for fsGroup {group}: {e}") from None
        self._owned.add(key)

    def teardown(self, uid: str) -> None:
        """Unmount and remove everything of the pod."""
        for owned in list(self._owned):
            if owned[0] == uid:
                self._owned.discard(owned)
        # Runs in a worker thread: list() copies the keys in one step under the GIL.
        for key in list(self._tokens):
            if key[0] == uid:
                self._tokens.pop(key, None)
        pod_dir = self.pod_dir(uid)
        if not os.path.isdir(pod_dir):
            return
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if line.split()[4].startswith(pod_dir + "/")]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(pod_dir, ignore_errors=True)


def container_mounts(container: Obj, volume_paths: dict[str, str],
                     readonly: frozenset[str] = frozenset(), env: dict[str, str] | None = None) -> list[Mount]:
    """The container's volumeMounts as host paths, with subPath (or subPathExpr, $(VAR)s
    expanded from the container's `env`) inside its volume; a mount of a volume in
    `readonly` is read-only whatever the volumeMount says."""
    out = []
    for vm in container.get("volumeMounts") or []:
        vol = vm.get("name", "")
        host = volume_paths.get(vol)
        if host is None:
            raise VolumeError(f'unable to find volume "{vm.get("name")}"')
        if vm.get("recursiveReadOnly") == "Enabled":
            # IfPossible falls back to a plain read-only mount, as the kubelet's.
            raise VolumeError(f'volumeMount "{vol}" of container "{container.get("name", "")}": recursive read-only '
                              "mounts are not supported by this node's container runtime (containerd 1.6)")
        sub = vm.get("subPath") or ""
        if not sub and vm.get("subPathExpr"):
            sub = expand(vm["subPathExpr"], env or {})
            if not safe_relative(sub):
                raise VolumeError(f'failed to prepare subPath for volumeMount "{vol}" of container '
                                  f'"{container.get("name", "")}": subPathExpr {vm["subPathExpr"]!r} expands '
                                  f"to {sub!r}, not a relative path inside the volume")
        if sub:
            if not safe_relative(sub):
                raise VolumeError(f"invalid subPath {sub!r}")
            target = os.path.join(host, sub)
            # A link inside the volume (a pod can make one in a persistent volume) must not
            # lead the mount out of it.
            inside = os.path.realpath(host)
            if os.path.commonpath([inside, os.path.realpath(target)]) != inside:
                raise VolumeError(f'subPath "{sub}" of volume "{vol}" leads outside the volume')
            if not os.path.exists(target):
                _make_sub_path(host, sub)
            host = target
        out.append(Mount(vm.get("mountPath", ""), host, bool(vm.get("readOnly")) or vol in readonly))
    return out


def _make_sub_path(volume: str, sub: str) -> None:
    """Create a missing subPath with its volume's mode (setgid included), as the kubelet does:
    an fsGroup-owned emptyDir's group can then write in it too, not just root."""
    mode = stat.S_IMODE(os.stat(volume).st_mode)
    path = volume
    for part in sub.split("/"):
        path = os.path.join(path, part)
        if not os.path.isdir(path):
            os.mkdir(path)
            os.chmod(path, mode)  # mkdir's mode is cut by the umask
