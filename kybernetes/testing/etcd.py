"""A real throwaway etcd member in a subprocess, for tests and benchmarks.

`EtcdProcess` runs Debian's `etcd` binary on free ports with a temporary data
dir, plain http or TLS with client certificates (`make_tls` writes a CA, a
serving certificate for 127.0.0.1 and a client certificate), waits until it
answers, and on `stop` kills only the process it started and removes its dir.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes.storage.etcdmember import remove_stale_socket, socket_file, unix_listener
from kybernetes.testing.cluster import file_tail, free_port


def etcd_binary() -> str | None:
    return shutil.which("etcd")


@dataclass(frozen=True)
class EtcdTLS:
    """PEM files: the CA, etcd's serving pair (for 127.0.0.1/localhost), a client pair."""

    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_tls(directory: str) -> EtcdTLS:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(name: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path, key_path = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cert_path, key_path

    ca_path = os.path.join(directory, "ca.crt")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    server = leaf("server", ExtendedKeyUsageOID.SERVER_AUTH,
                  [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return EtcdTLS(ca_path, server[0], server[1], client[0], client[1])


class EtcdProcess:
    """One etcd member; alone, a single-member cluster. `url` is its client URL."""

    def __init__(self, tls: bool = False, quota_bytes: int = 0, *, name: str = "test",
                 initial_cluster: str = "", peer_port: int = 0, unix_socket: bool = False) -> None:
        self.use_tls = tls
        self.unix_socket = unix_socket  # also listen on a unix socket in its dir (`socket_url`)
        self.quota_bytes = quota_bytes
        self.name = name
        self.dir = ""
        self.tls: EtcdTLS | None = None
        self.peer_url = f"http://127.0.0.1:{peer_port or free_port()}"
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_url(self) -> str:
        """The unix socket's endpoint (with `unix_socket`)."""
        return "unix://" + socket_file(self.dir, self._client_port)

    @property
    def _client_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "etcd.log")

    def start(self, timeout: float = 20.0) -> None:
        self.launch()
        self.wait_healthy(timeout)

    def launch(self) -> None:
        """Start the process (again, after `kill`, on the same data dir and ports)."""
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("no etcd binary (Debian package etcd-server)")
        if not self.dir:
            self.dir = tempfile.mkdtemp(prefix="kyb-etcd-")
            if self.use_tls:
                self.tls = make_tls(self.dir)
            self.url = f"{'https' if self.use_tls else 'http'}://127.0.0.1:{free_port()}"
        args = []
        if self.tls is not None:
            args = ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                    "--trusted-ca-file", self.tls.ca_file, "--client-cert-auth"]
        if self.quota_bytes:
            args += ["--quota-backend-bytes", str(self.quota_bytes)]
        listen = self.url
        if self.unix_socket:
            listen += "," + unix_listener(self._client_port)
            remove_stale_socket(socket_file(self.dir, self._client_port))
        argv = [binary, "--name", self.name, "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", listen, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
                "--log-level", "warn",
                # Watches hear the revision within a second when nothing they watch changes.
                "--experimental-watch-progress-notify-interval", "1s", *args]
        # The member dies with the test process. Not with a preexec_fn: this process runs
        # gRPC's threads, and Python code between fork and exec can crash the child.
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._healthy():
                return
            time.sleep(0.1)
        tail = file_tail(self.log_path)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy:\n{tail}")

    def _healthy(self) -> bool:
        ctx = None
        if self.tls is not None:
            ctx = ssl.create_default_context(cafile=self.tls.ca_file)
            ctx.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2, context=ctx) as resp:
                return b'"true"' in resp.read()
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash; the data dir stays (for `launch` again, or `stop`)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def __enter__(self) -> EtcdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EtcdCluster:
    """`size` members on this machine forming one etcd cluster (plain http)."""

    def __init__(self, size: int = 3) -> None:
        ports = [free_port() for _ in range(size)]
        initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, p in enumerate(ports))
        self.members = [EtcdProcess(name=f"m{i}", initial_cluster=initial, peer_port=p)
                        for i, p in enumerate(ports)]

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, timeout: float = 30.0) -> None:
        try:
            for m in self.members:  # all at once: a member is healthy only with a quorum
                m.launch()
            for m in self.members:
                m.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for m in self.members:
            m.stop()
