"""Who owns a pod's volume files on the node, and with which mode, as the kubelet decides it
(upstream's `[sig-auth] ServiceAccounts should set ownership and permission when RunAsUser or
FsGroup is present`): a projected token belongs to the pod's one runAsUser and is 0600 once
the pod names a user or fsGroup; fsGroup owns every file and lets its group read it; the
containers run with the fsGroup among their supplementary groups."""

from __future__ import annotations

import os
import stat

import pytest

from kybernetes.agent.podspec import container_spec, sandbox_spec
from kybernetes.agent.volumes import (
    VolumeManager,
    fs_group,
    fs_user,
    token_mode,
    with_fs_group,
    write_atomically,
)


def _pod(psc: dict | None = None, containers: list[dict] | None = None, init: list[dict] | None = None) -> dict:
    spec: dict = {"containers": containers or [{"name": "c"}]}
    if psc is not None:
        spec["securityContext"] = psc
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}


def test_fs_user_is_the_one_user_every_container_runs_as() -> None:
    assert fs_user(_pod({"runAsUser": 1000})) == 1000
    assert fs_user(_pod(None, [{"name": "a", "securityContext": {"runAsUser": 7}},
                              {"name": "b", "securityContext": {"runAsUser": 7}}])) == 7
    # A container overriding the pod's user with another one: nobody owns the token.
    assert fs_user(_pod({"runAsUser": 1000}, [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 2}}])) is None
    # An init container naming no user (and no pod default) counts too.
    assert fs_user(_pod(None, [{"name": "a", "securityContext": {"runAsUser": 7}}], init=[{"name": "i"}])) is None
    assert fs_user(_pod()) is None
    assert fs_group(_pod({"fsGroup": 10000})) == 10000
    assert fs_group(_pod()) is None


@pytest.mark.parametrize(("user", "group", "want"), [
    (1000, None, 0o600), (None, 10000, 0o640), (1000, 10000, 0o640), (None, None, 0o644),
])
def test_token_mode_after_ownership_change(user: int | None, group: int | None, want: int) -> None:
    files = with_fs_group({"token": (b"t", token_mode(0o644, user, group))}, group)
    assert files["token"][1] == want


def test_fs_group_lets_the_group_read_every_file() -> None:
    assert with_fs_group({"a": (b"1", 0o400), "b": (b"2", 0o644)}, 5) == {"a": (b"1", 0o440), "b": (b"2", 0o644)}
    assert with_fs_group({"a": (b"1", 0o400)}, None) == {"a": (b"1", 0o400)}


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_write_atomically_sets_owner_and_group(tmp_path) -> None:
    vol = str(tmp_path / "vol")
    write_atomically(vol, {"token": (b"t", 0o640), "sub/x": (b"x", 0o444)}, {"token": 1000}, 10000)
    st = os.stat(os.path.join(vol, "token"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 10000, 0o640)
    st = os.stat(os.path.join(vol, "sub", "x"))
    assert (st.st_uid, st.st_gid) == (0, 10000)
    for d in (vol, os.path.join(vol, "..data"), os.path.join(vol, "sub")):
        st = os.stat(d)
        assert st.st_gid == 10000 and st.st_mode & stat.S_ISGID, d
    # Without a user or group nothing changes hands.
    plain = str(tmp_path / "plain")
    write_atomically(plain, {"token": (b"t", 0o644)})
    st = os.stat(os.path.join(plain, "token"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
async def test_projected_token_volume_owned_by_run_as_user_and_fs_group(tmp_path) -> None:
    async def fetch(kind: str, ns: str, name: str) -> dict | None:
        return None

    async def token(pod: dict, audience: str, seconds: int) -> tuple[str, float]:
        return "a.b.c", 4e9

    manager = VolumeManager(str(tmp_path), fetch, {}, token)
    volume = {"name": "v", "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}
    want = {(True, False): (1000, 0, 0o600), (False, True): (0, 10000, 0o640),
            (True, True): (1000, 10000, 0o640), (False, False): (0, 0, 0o644)}
    for (with_user, with_group), expected in want.items():
        psc = {**({"runAsUser": 1000} if with_user else {}), **({"fsGroup": 10000} if with_group else {})}
        pod = _pod(psc)
        pod["metadata"]["uid"] = f"u-{with_user}-{with_group}"
        pod["spec"]["volumes"] = [volume]
        paths = await manager.setup(pod)
        st = os.stat(os.path.join(paths["v"], "token"))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == expected, psc


def test_containers_run_with_fs_group_as_supplementary_group() -> None:
    pod = _pod({"fsGroup": 10000, "supplementalGroups": [5]})
    spec = container_spec(pod, pod["spec"]["containers"][0], [], 0, "h")
    assert spec.supplemental_groups == [5, 10000]
    assert sandbox_spec(pod, "/logs", 0, ([], [], [])).supplemental_groups == [5, 10000]
    plain = _pod()
    assert container_spec(plain, plain["spec"]["containers"][0], [], 0, "h").supplemental_groups == []


def test_missing_sub_path_gets_its_volumes_mode(tmp_path) -> None:
    from kybernetes.agent.volumes import container_mounts

    vol = tmp_path / "empty-dir"
    vol.mkdir()
    os.chmod(vol, 0o777 | stat.S_ISGID)
    mounts = container_mounts({"volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": "a/b"}]}, {"v": str(vol)})
    assert mounts[0].host_path == str(vol / "a" / "b")
    for d in (vol / "a", vol / "a" / "b"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o777 | stat.S_ISGID, d


def test_sub_path_expr_expands_the_containers_variables(tmp_path) -> None:
    from kybernetes.agent.volumes import VolumeError, container_mounts

    container = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/m", "subPathExpr": "$(POD_NAME)/x"}]}
    mounts = container_mounts(container, {"v": str(tmp_path)}, env={"POD_NAME": "web-0"})
    assert mounts[0].host_path == str(tmp_path / "web-0" / "x")
    assert (tmp_path / "web-0" / "x").is_dir()
    escaping = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/m", "subPathExpr": "$(P)"}]}
    with pytest.raises(VolumeError, match="subPathExpr"):
        container_mounts(escaping, {"v": str(tmp_path)}, env={"P": "../etc"})
