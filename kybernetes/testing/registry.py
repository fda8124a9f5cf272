"""A local image registry (Debian `docker-registry`, the CNCF distribution server) for
tests and benchmarks, and a push of the project's OCI image tarballs into it, so that
pods exercise the real pull path: containerd resolving, authenticating and fetching."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

from kybernetes.api.children import popen_dying_with_parent
from kybernetes.testing.cluster import free_port, stop_process


class RegistryProcess:
    """`docker-registry` on 127.0.0.1 with storage in a temporary dir; with `user`
    and `password`, it requires them (htpasswd, bcrypt)."""

    def __init__(self, user: str = "", password: str = "") -> None:
        self.dir = tempfile.mkdtemp(prefix="kyb-registry-")
        self.port = free_port()
        self.user, self.password = user, password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        config = {"version": 0.1, "log": {"level": "warn"},
                  "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")},
                              "delete": {"enabled": True}},
                  "http": {"addr": self.host}}
        if self.user:
            import bcrypt

            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            with open(os.path.join(self.dir, "htpasswd"), "w") as f:
                f.write(f"{self.user}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "kybernetes-test", "path": os.path.join(self.dir, "htpasswd")}}
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            json.dump(config, f)  # YAML is a superset of JSON
        log = open(os.path.join(self.dir, "registry.log"), "ab")  # noqa: SIM115 - the child owns it
        self.proc = popen_dying_with_parent(["docker-registry", "serve", path], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401 with auth: it answers
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("docker-registry did not answer")

    def _request(self, method: str, url: str, data: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        hdrs = dict(headers or {})
        if self.user:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req = urllib.request.Request(url if url.startswith("http") else f"http://{self.host}{url}", data=data,
                                     method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def push_oci_tar(self, tar_path: str, repository: str, tag: str) -> None:
        """Push the image of an OCI image-layout tarball as `repository:tag`."""
        with tarfile.open(tar_path) as tar:
            def read(name: str) -> bytes:
                f = tar.extractfile(name)
                assert f is not None
                return f.read()
            index = json.loads(read("index.json"))
            manifest_digest = index["manifests"][0]["digest"]
            manifest = read("blobs/sha256/" + manifest_digest.split(":", 1)[1])
            parsed = json.loads(manifest)
            for blob in [parsed["config"], *parsed["layers"]]:
                digest = blob["digest"]
                status, _, _ = self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
                if status == 200:
                    continue
                status, headers, body = self._request("POST", f"/v2/{repository}/blobs/uploads/")
                assert status == 202, (status, body)
                location = headers["Location"]
                sep = "&" if "?" in location else "?"
                status, _, body = self._request("PUT", f"{location}{sep}digest={digest}",
                                                read("blobs/sha256/" + digest.split(":", 1)[1]),
                                                {"Content-Type": "application/octet-stream"})
                assert status == 201, (status, body)
        status, _, body = self._request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                                        {"Content-Type": parsed.get("mediaType",
                                                                    "application/vnd.oci.image.manifest.v1+json")})
        assert status == 201, (status, body)

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
