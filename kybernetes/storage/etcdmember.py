"""The embedded etcd member of `kyb server --cluster-init`, and which store a server runs on.

Owns ``<data dir>/etcd`` (the member's data, 0700) and ``<data dir>/etcd.log``. The member is
Debian's ``etcd`` binary run as a child of the server: clients (the API server) reach it on
loopback only, other members on the peer port of the server's address, both over TLS with
certificates required on both sides. It keeps no history of its own accord: the server's
compactor decides (no ``--auto-compaction-*``).

Pure functions decide (the datastore from the flags, the command line, health from /health's
answer); `EtcdMember` is the thin shell that runs, watches and stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from kybernetes.api.children import popen_dying_with_parent

log = logging.getLogger("kybernetes.etcd")

ETCD_BINARY = "etcd"
DEFAULT_CLIENT_PORT = 2379
DEFAULT_PEER_PORT = 2380
CLUSTER_TOKEN = "kybernetes"
# Twice etcd's 2 GiB default, well under the 8 GiB it advises as a maximum: nothing
# defragments the database file (pages freed by compaction are reused, the file never
# shrinks), and a store that hits the quota refuses every write until an operator acts.
QUOTA_BACKEND_BYTES = 4 * 1024**3
HEALTH_TIMEOUT = 60.0
PROGRESS_AFTER = 2.0

Datastore = Literal["sqlite", "embedded-etcd", "external-etcd"]


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatastoreChoice:
    """The server's store: SQLite in the data dir, an embedded etcd member (its client and
    peer ports), or an external etcd cluster (its client URLs and TLS files)."""

    kind: Datastore
    endpoints: tuple[str, ...] = ()
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    client_port: int = DEFAULT_CLIENT_PORT
    peer_port: int = DEFAULT_PEER_PORT
    join_url: str = ""  # `--server`: the embedded member joins that server's cluster


def parse_endpoints(value: str) -> tuple[str, ...]:
    """The client URLs of `--datastore-endpoint` (comma-separated http(s)://host:port);
    ValueError saying which one is wrong."""
    out = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError:
            port, parts = None, None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or port is None \
                or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{item!r}: want an etcd client URL like https://10.0.0.1:2379")
        out.append(f"{parts.scheme}://{parts.netloc}")
    if not out:
        raise ValueError("no endpoint given")
    return tuple(out)


def choose_datastore(*, cluster_init: bool, endpoint: str, api_workers: int, member_data: bool,
                     sqlite_data: bool, ca_file: str = "", cert_file: str = "", key_file: str = "",
                     client_port: int = DEFAULT_CLIENT_PORT, peer_port: int = DEFAULT_PEER_PORT,
                     join_url: str = "") -> DatastoreChoice:
    """The store the server runs on, from its flags and what its data dir already holds.

    A data dir with an etcd member keeps running it without `--cluster-init` (as k3s does);
    a SQLite store is never silently left behind for an empty etcd one. ValueError says why not.
    """
    if cluster_init and endpoint:
        raise ValueError("--cluster-init starts an embedded etcd; --datastore-endpoint names an external one: "
                         "give one of them")
    if join_url and (cluster_init or endpoint):
        raise ValueError("--server joins the cluster of a running server: it founds none (--cluster-init) "
                         "and uses no external etcd (--datastore-endpoint)")
    if (ca_file or cert_file or key_file) and not endpoint:
        raise ValueError("--datastore-cafile/-certfile/-keyfile belong to --datastore-endpoint")
    if bool(cert_file) != bool(key_file):
        raise ValueError("--datastore-certfile and --datastore-keyfile go together")
    if endpoint:
        choice = DatastoreChoice("external-etcd", parse_endpoints(endpoint), ca_file, cert_file, key_file)
    elif cluster_init or member_data or join_url:
        if sqlite_data and not member_data:
            raise ValueError(f"the data dir holds a SQLite store (state.db): {'--server' if join_url else '--cluster-init'}"
                             " would start an etcd member beside it (moving a store to etcd is not supported yet)")
        for name, port in (("--etcd-client-port", client_port), ("--etcd-peer-port", peer_port)):
            if not 0 < port < 65536:
                raise ValueError(f"{name} {port}: want a port from 1 to 65535")
        if client_port == peer_port:
            raise ValueError("--etcd-client-port and --etcd-peer-port must differ")
        choice = DatastoreChoice("embedded-etcd", client_port=client_port, peer_port=peer_port,
                                 join_url=join_url.rstrip("/"))
    else:
        return DatastoreChoice("sqlite")
    if api_workers > 1:
        raise ValueError("--api-workers > 1 needs the SQLite store for now: run one API process on etcd")
    return choice


def has_member_data(data_dir: str) -> bool:
    """Whether an etcd member has run in `data_dir` (it then restarts from its own state
    and ignores the --initial-cluster flags)."""
    return os.path.isdir(os.path.join(data_dir, "member"))


def url(scheme: str, host: str, port: int) -> str:
    try:
        bracket = isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        bracket = False
    return f"{scheme}://[{host}]:{port}" if bracket else f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class MemberTls:
    """The member's certificates (its own CA, see `apiserver.pki.ensure_etcd_pki`)."""

    ca_file: str
    cert_file: str
    key_file: str
    peer_cert_file: str
    peer_key_file: str


UNIX_PATH_MAX = 108  # bytes of a unix socket's address, its terminating NUL included (Linux)


def unix_listener(port: int) -> str:
    """etcd 3.4's listen URL for a unix socket: it takes only unix://host:port, and creates
    the socket as the file "host:port" in its working directory (`socket_file`)."""
    return f"unix://localhost:{port}"


def socket_file(directory: str, port: int) -> str:
    """The socket `unix_listener(port)` creates when etcd runs in `directory`."""
    return os.path.join(os.path.abspath(directory), f"localhost:{port}")


def remove_stale_socket(path: str) -> None:
    """Remove the socket a killed member left: etcd removes its own when it stops cleanly,
    but refuses to start beside an old one ("address already in use")."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@dataclass(frozen=True)
class MemberConfig:
    name: str
    data_dir: str
    tls: MemberTls
    peer_host: str  # the address other members dial
    client_port: int = DEFAULT_CLIENT_PORT
    peer_port: int = DEFAULT_PEER_PORT
    quota_backend_bytes: int = QUOTA_BACKEND_BYTES
    # Joining a running cluster (`kyb server --server`): every member's (name, peer URL),
    # this one's included, as MemberAdd left them; empty when founding a new cluster.
    existing_cluster: tuple[tuple[str, str], ...] = ()
    # A private directory (0700) where the member also listens on a unix socket for this
    # server's own store; empty: TCP with TLS only.
    socket_dir: str = ""

    @property
    def client_url(self) -> str:
        # Loopback only: each server's API server talks to its own member.
        return url("https", "127.0.0.1", self.client_port)

    @property
    def socket_path(self) -> str:
        """The unix socket's file (the member runs in `socket_dir`)."""
        return socket_file(self.socket_dir, self.client_port)

    @property
    def local_endpoint(self) -> str:
        """The endpoint this server's own store dials: the unix socket when there is one.

        TLS on loopback bought nothing the directory's permissions do not already give,
        and cost the member a third of its CPU per write (benchmarks/README.md, issue 17)."""
        if self.socket_dir and len(os.fsencode(self.socket_path)) < UNIX_PATH_MAX:
            return f"unix://{self.socket_path}"
        # A data dir too deep for a socket address (etcd binds the short relative name,
        # but a client must connect by the whole path): TLS on loopback as before.
        return self.client_url

    @property
    def peer_url(self) -> str:
        return url("https", self.peer_host, self.peer_port)


def initial_cluster(members: tuple[tuple[str, str], ...]) -> str:
    """etcd's --initial-cluster value: name=peerURL, comma-separated."""
    return ",".join(f"{name}={peer}" for name, peer in members)


def member_command(cfg: MemberConfig, binary: str = ETCD_BINARY) -> list[str]:
    """The etcd command line of a member founding a new one-member cluster, or joining the
    running one of `cfg.existing_cluster` (on a data dir that already holds a member etcd
    ignores the --initial-* flags and rejoins its cluster)."""
    t = cfg.tls
    members = cfg.existing_cluster or ((cfg.name, cfg.peer_url),)
    return [
        binary,
        f"--name={cfg.name}",
        f"--data-dir={cfg.data_dir}",
        f"--listen-client-urls={cfg.client_url}" + (f",{unix_listener(cfg.client_port)}" if cfg.socket_dir else ""),
        f"--advertise-client-urls={cfg.client_url}",
        f"--listen-peer-urls={cfg.peer_url}",
        f"--initial-advertise-peer-urls={cfg.peer_url}",
        f"--initial-cluster={initial_cluster(members)}",
        f"--initial-cluster-state={'existing' if cfg.existing_cluster else 'new'}",
        f"--initial-cluster-token={CLUSTER_TOKEN}",
        "--client-cert-auth=true",
        f"--trusted-ca-file={t.ca_file}",
        f"--cert-file={t.cert_file}",
        f"--key-file={t.key_file}",
        "--peer-client-cert-auth=true",
        f"--peer-trusted-ca-file={t.ca_file}",
        f"--peer-cert-file={t.peer_cert_file}",
        f"--peer-key-file={t.peer_key_file}",
        f"--quota-backend-bytes={cfg.quota_backend_bytes}",
        "--auto-compaction-retention=0",
        # Bookmarks for the watch cache every few seconds (etcd's default is 10 minutes):
        # they carry its revision past writes outside the watched prefix.
        "--experimental-watch-progress-notify-interval=5s",
        "--enable-v2=false",
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=warn",
    ]


def member_env(environ: Mapping[str, str], cpus: int) -> dict[str, str]:
    """The member's environment: ours without ETCD_* variables, which etcd would read as
    flags (and refuses to start when one shadows a flag given), and GOMAXPROCS one below
    the `cpus` this machine gives us unless the caller set it.

    The member shares its machine with this server, whose event loop keeps one core busy
    under load. Go's scheduler, given every core, spins threads looking for work on the
    core the loop needs: on 2 cores etcd used 0.31 ms of CPU per create with GOMAXPROCS=2
    and 0.19 ms with 1, and the server on it made 15-22 % more creates/s at 16 clients
    (benchmarks/README.md, issue 17)."""
    env = {k: v for k, v in environ.items() if not k.startswith("ETCD_")}
    env.setdefault("GOMAXPROCS", str(max(1, cpus - 1)))
    return env


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask, which a cpuset narrows)."""
    return len(os.sched_getaffinity(0))


def healthy(status: int, body: bytes) -> bool:
    """Whether etcd's /health answer says the member serves (it has a leader, no alarm)."""
    if status != 200:
        return False
    try:
        return json.loads(body).get("health") in ("true", True)
    except (ValueError, AttributeError):
        return False


# -- the process -------------------------------------------------------------------------------


class MemberFailed(RuntimeError):
    """The member exited, or did not become healthy in time (the message ends with its log)."""


class EtcdMember:
    """One etcd member process.

    `start` must run on a thread that lives as long as the server (the main thread): with
    `die_with_parent` the member gets SIGTERM when the thread that started it ends
    (api/children.py).
    """

    def __init__(self, cfg: MemberConfig, log_path: str, client_cert: str, client_key: str, *,
                 die_with_parent: bool = False, binary: str = ETCD_BINARY) -> None:
        self.cfg = cfg
        self.log_path = log_path
        self.client_cert = client_cert
        self.client_key = client_key
        self.die_with_parent = die_with_parent
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarted_existing = False

    def start(self) -> None:
        os.makedirs(self.cfg.data_dir, mode=0o700, exist_ok=True)
        os.chmod(self.cfg.data_dir, 0o700)  # etcd warns about, and the data dir forbids, anything wider
        self.restarted_existing = has_member_data(self.cfg.data_dir)
        cwd = None
        if self.cfg.socket_dir:
            cwd = self.cfg.socket_dir
            # Whoever may open the directory has the whole store: the server's user only.
            os.makedirs(cwd, mode=0o700, exist_ok=True)
            os.chmod(cwd, 0o700)
            remove_stale_socket(self.cfg.socket_path)
        out = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            start = popen_dying_with_parent if self.die_with_parent else subprocess.Popen
            self.proc = start(member_command(self.cfg, self.binary), stdin=subprocess.DEVNULL, stdout=out,
                              stderr=out, env=member_env(os.environ, usable_cpus()), cwd=cwd)
        except FileNotFoundError:
            raise MemberFailed(f"{self.binary!r} not found: install Debian's etcd-server package") from None
        finally:
            out.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cfg.tls.ca_file)
        ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx

    def _probe(self, ctx: ssl.SSLContext) -> bool:
        try:
            with urllib.request.urlopen(self.cfg.client_url + "/health", context=ctx, timeout=2) as r:
                return healthy(r.status, r.read())
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    async def wait_healthy(self, timeout: float = HEALTH_TIMEOUT,
                           progress: Callable[[str], None] | None = None) -> float:
        """Wait until the member answers healthy; returns the seconds it took. Says so
        through `progress` once it takes longer than PROGRESS_AFTER."""
        ctx = self._ssl()
        started = time.monotonic()
        said = False
        while True:
            if not self.running():
                code = self.proc.returncode if self.proc is not None else None
                raise MemberFailed(f"etcd member exited with {code}: {self._log_tail()}")
            if await asyncio.to_thread(self._probe, ctx):
                return time.monotonic() - started
            waited = time.monotonic() - started
            if waited > timeout:
                raise MemberFailed(f"etcd member not healthy after {timeout:.0f}s: {self._log_tail()}")
            if waited > PROGRESS_AFTER and not said and progress is not None:
                said = True
                progress(f"waiting for the etcd member at {self.cfg.client_url} to become healthy "
                         f"(log: {self.log_path})")
            await asyncio.sleep(0.1)

    async def supervise(self) -> None:
        """Start the member again when it exits, as the server does for its other children."""
        while True:
            await asyncio.sleep(1.0)
            if self.proc is not None and not self.running():
                log.warning("etcd member exited with %s; restarting", self.proc.returncode)
                self.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (etcd then closes its database cleanly), SIGKILL after `timeout`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)
