"""A volume's ownership change for the pod's `fsGroup`, as the kubelet's
SetVolumeOwnership: every file and directory gets the group, group read/write (read only
for a read-only volume), directories also group search and setgid so that new files
inherit the group. With `fsGroupChangePolicy: OnRootMismatch` the walk is skipped when the
volume's root already has that group and those permissions (a large volume mounted again
is not walked again); `Always` (the default) walks every time the volume is set up.
The mode decisions are pure; `change_ownership` walks the tree."""

from __future__ import annotations

import os
import stat
from typing import Any

Obj = dict[str, Any]

RW_MASK = 0o660
RO_MASK = 0o440
EXEC_MASK = 0o110
ON_ROOT_MISMATCH = "OnRootMismatch"


def wanted_mode(mode: int, is_dir: bool, read_only: bool) -> int:
    """`mode` with what the group needs added (permission bits and setgid only)."""
    mask = RO_MASK if read_only else RW_MASK
    if is_dir:
        mask |= EXEC_MASK | stat.S_ISGID
    return stat.S_IMODE(mode) | mask


def root_matches(root_gid: int, root_mode: int, group: int, read_only: bool) -> bool:
    """Whether the volume's root already has the group and its permissions, the test of
    OnRootMismatch."""
    return root_gid == group and wanted_mode(root_mode, True, read_only) == stat.S_IMODE(root_mode)


def change_policy(pod: Obj) -> str:
    return str(((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroupChangePolicy") or "Always")


def change_ownership(path: str, group: int, policy: str, read_only: bool = False) -> bool:
    """Give the tree at `path` to `group` (see the module's docstring); False when
    OnRootMismatch found nothing to do. Symbolic links are not followed."""
    st = os.lstat(path)
    if policy == ON_ROOT_MISMATCH and root_matches(st.st_gid, st.st_mode, group, read_only):
        return False
    def own(target: str) -> None:
        info = os.lstat(target)
        if not stat.S_ISLNK(info.st_mode):
            os.lchown(target, -1, group)
            os.chmod(target, wanted_mode(info.st_mode, stat.S_ISDIR(info.st_mode), read_only))

    # os.walk descends into no linked directory; each directory is owned as a root.
    for root, _dirs, files in os.walk(path):
        own(root)
        for name in files:
            own(os.path.join(root, name))
    return True
