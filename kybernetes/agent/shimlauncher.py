"""The launcher the private containerd runs instead of the runc shim's binary (it comes
first on containerd's PATH under the shim's own name).

containerd 1.6 runs `containerd-shim-runc-v2 ... start` for every task it creates. For a
pod's container that program only finds that the pod's shim (started with the sandbox)
already serves it: it reads the bundle's `config.json` for the sandbox's id, sees the
shim's socket taken, writes the socket's address into the bundle and prints it. Starting
that Go program (its runtime, its service set up, a connection to containerd) takes
~10 ms of a container's start, twice on a pod's critical path (a sidecar, then the app).

The launcher, a POSIX shell script, does the same for a container whose sandbox's shim
is up (the address that shim wrote into the sandbox's bundle, its socket present) in
~2 ms, and hands everything else to the real shim binary unchanged: a sandbox, a missing
or malformed id or address, and every other action (`delete` and the daemon itself).
containerd creates a pod's containers only while its sandbox task exists; should the
pod's shim have died with its socket left behind, containerd's connection fails and the
sandbox, its task gone, is made again by the agent as for any dead sandbox.
"""

from __future__ import annotations

import os
import shlex

# The sandbox's id is read as containerd's CRI plugin writes it into each container's OCI
# spec; the shim groups by it (its other grouping key, io.containerd.runc.v2.group, is an
# annotation our containerd config never passes through).
_SCRIPT = r"""#!/bin/sh
# Written by the kybernetes agent (kybernetes/agent/shimlauncher.py says why).
real=@REAL@
id= prev=
for a do
    [ "$prev" = -id ] && id=$a
    prev=$a
done
[ "$prev" = start ] || exec "$real" "$@"
sid=$(grep -o -m 1 '"io.kubernetes.cri.sandbox-id":"[0-9a-f]*"' config.json 2>/dev/null) || exec "$real" "$@"
sid=${sid#*:\"}
sid=${sid%\"}
case $sid in "$id"|*[!0-9a-f]*) exec "$real" "$@" ;; esac
[ ${#sid} -eq 64 ] && [ -r "../$sid/address" ] || exec "$real" "$@"
address=
{ read -r address || [ -n "$address" ]; } < "../$sid/address" || exec "$real" "$@"
case $address in unix:///*) ;; *) exec "$real" "$@" ;; esac
case $address in *[!A-Za-z0-9/:._-]*) exec "$real" "$@" ;; esac
[ -S "${address#unix://}" ] || exec "$real" "$@"
printf %s "$address" > address || exec "$real" "$@"
printf %s "$address"
"""


def launcher_script(real_shim: str) -> str:
    """The launcher's text, handing off to the shim binary at `real_shim`."""
    return _SCRIPT.replace("@REAL@", shlex.quote(real_shim))


def write_launcher(path: str, real_shim: str) -> str:
    """Write the launcher at `path` (root's alone: 0700) and return `path`."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as f:
        f.write(launcher_script(real_shim))
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path
