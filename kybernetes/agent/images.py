"""The project's offline container images, built as OCI image-layout tarballs from
Debian's `busybox-static` (no registry on the internet is reachable here): one layer
with the static busybox binary, a link for each applet, a minimal /etc and /tmp.

* `busybox.tar` -> docker.io/library/busybox:1.35 (and :latest), command `sh`
* `pause.tar`   -> registry.k8s.io/pause:3.10, the pod sandbox: a shell that sleeps
  until SIGTERM/SIGINT, as PID 1 of every pod

Both can be imported into containerd (`ctr -n k8s.io images import`) or pushed to a
registry. The output is byte-for-byte reproducible for the same busybox binary.

An import names each image by its tags and, as a pull from a registry does, by its
repository digest (`import_args`): the runtime then reports
`docker.io/library/busybox@sha256:...` as the image's ref, the `imageID` the kubelet
shows, instead of the bare config digest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

MTIME = 1_700_000_000  # fixed, for reproducible layers
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"

IMAGES = {
    "busybox": {"names": ["docker.io/library/busybox:1.35", "docker.io/library/busybox:latest"],
                "config": {"Cmd": ["sh"], "Env": [PATH_ENV]}},
    "pause": {"names": ["registry.k8s.io/pause:3.10"],
              "config": {"Entrypoint": ["/bin/sh", "-c", PAUSE_SCRIPT], "Env": [PATH_ENV]}},
}

ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
}


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = MTIME
    info.uname = info.gname = "root"
    return info


def layer_tar(busybox: str) -> bytes:
    """The uncompressed layer: busybox, its applet links, /etc basics, empty dirs."""
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777), ("var", 0o755),
                        ("var/www", 0o755), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755)):
            tar.addfile(_info(d, tarfile.DIRTYPE, mode))
        with open(busybox, "rb") as f:
            data = f.read()
        tar.addfile(_info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for applet in sorted(set(applets) - {"busybox"}):
            tar.addfile(_info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        for name, text in sorted(ETC_FILES.items()):
            raw = text.encode()
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))
    return buf.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    tar.addfile(_info(f"blobs/sha256/{digest}", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return f"sha256:{digest}"


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def compressed_layer(layer: bytes) -> bytes:
    """The layer as its blob holds it. Level 6 (the gzip tool's default): level 9 took
    twice as long for a 0.4 % smaller blob, and an agent builds its images as it starts."""
    return gzip.compress(layer, compresslevel=6, mtime=MTIME)


def write_image(path: str, names: list[str], config: dict, layer: bytes, gz: bytes | None = None) -> str:
    """Write an OCI image-layout tarball; returns the manifest digest. `gz` is
    `compressed_layer(layer)` when the caller has it already."""
    if gz is None:
        gz = compressed_layer(layer)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    image_config = {"architecture": ARCH, "os": "linux", "config": config, "created": "2023-11-14T22:13:20Z",
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "kybernetes scripts/build-images.py"}]}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        layer_digest = _blob(tar, gz)
        config_bytes = _json(image_config)
        config_digest = _blob(tar, config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config_digest, "size": len(config_bytes)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": layer_digest, "size": len(gz)}]}
        manifest_bytes = _json(manifest)
        manifest_digest = _blob(tar, manifest_bytes)
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
             "size": len(manifest_bytes), "platform": {"architecture": ARCH, "os": "linux"},
             "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}
            for name in names]}
        for name, data in (("oci-layout", _json({"imageLayoutVersion": "1.0.0"})), ("index.json", _json(index))):
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return manifest_digest


def build_all(out_dir: str, busybox: str = "/bin/busybox") -> dict[str, str]:
    """Write every image into `out_dir`; returns {file name: manifest digest}."""
    os.makedirs(out_dir, exist_ok=True)
    layer = layer_tar(busybox)
    gz = compressed_layer(layer)
    out = {}
    for name, spec in IMAGES.items():
        out[f"{name}.tar"] = write_image(os.path.join(out_dir, f"{name}.tar"), spec["names"], spec["config"],
                                         layer, gz)
    return out


def repository(name: str) -> str:
    """The repository part of an image reference (no tag, no digest)."""
    name = name.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def import_args(tarball: str) -> list[str]:
    """`ctr images import` options that also name the tarball's image by repository
    digest (`--base-name` is the repository every name of the tarball shares); none when
    its names do not share one."""
    try:
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("index.json")
            index = json.loads(member.read()) if member is not None else {}
    except (OSError, tarfile.TarError, KeyError, ValueError):
        return []
    names = {repository(m.get("annotations", {}).get("io.containerd.image.name", ""))
             for m in index.get("manifests") or []}
    if len(names) != 1 or "" in names:
        return []
    return ["--base-name", names.pop(), "--digests"]
