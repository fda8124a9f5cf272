"""`kyb snapshot save|list|delete|restore`: snapshots of a server's store (SQLite or etcd),
as k3s' `etcd-snapshot`; what a snapshot holds is described in `kybernetes.storage.snapshots`."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import click

from kybernetes.storage import snapshots as snap

DEFAULT_DATA_DIR = "/var/lib/kybernetes"


def this_node() -> str:
    # The server names its etcd member so too (cli/main.py).
    return socket.gethostname().lower()


def _data_dir_option(fn: Any) -> Any:
    return click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True, help="The server's data dir.")(fn)


def _dir_option(fn: Any) -> Any:
    return click.option("--dir", "directory", default="", help="Where snapshots are [default: <data-dir>/snapshots].")(fn)


def _directory(data_dir: str, directory: str) -> str:
    return os.path.abspath(directory or os.path.join(data_dir, snap.SNAPSHOT_DIR))


@click.group("snapshot")
def snapshot_command() -> None:
    """Snapshots of the cluster's store, with the PKI and encryption keys a restore needs."""


@snapshot_command.command("save")
@_data_dir_option
@_dir_option
@click.option("--name", default=snap.ON_DEMAND_NAME, show_default=True,
              help="Start of the file name (<name>-<node>-<UTC time>.tar); retention never prunes these.")
@click.option("--encryption-provider-config", default="",
              help="The server's EncryptionConfiguration, if not <data-dir>/encryption-config.yaml.")
@click.option("--datastore-endpoint", default="", metavar="URL[,URL...]",
              help="Snapshot this etcd instead of the store the server of --data-dir last ran on.")
@click.option("--datastore-cafile", default="", help="CA of --datastore-endpoint (PEM).")
@click.option("--datastore-certfile", default="", help="Client certificate for --datastore-endpoint (PEM).")
@click.option("--datastore-keyfile", default="", help="The key of --datastore-certfile (PEM).")
def save(data_dir: str, directory: str, name: str, encryption_provider_config: str, datastore_endpoint: str,
         datastore_cafile: str, datastore_certfile: str, datastore_keyfile: str) -> None:
    """Take a snapshot now, while the server runs (SQLite: an online backup; etcd: the
    member's snapshot stream), and print its path."""
    from kybernetes.storage.etcdmember import parse_endpoints

    data_dir = os.path.abspath(data_dir)
    try:
        snap.check_name(name)
        if datastore_endpoint:
            source = snap.Source("etcd", endpoints=parse_endpoints(datastore_endpoint), ca_file=datastore_cafile,
                                 cert_file=datastore_certfile, key_file=datastore_keyfile)
        else:
            source = snap.source_of(data_dir)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    except snap.SnapshotError as e:
        raise click.ClickException(str(e)) from None
    try:
        path = asyncio.run(snap.save(source, data_dir, _directory(data_dir, directory), name, this_node(),
                                     encryption_provider_config))
    except (snap.SnapshotError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(path)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@snapshot_command.command("list")
@_data_dir_option
@_dir_option
def list_command(data_dir: str, directory: str) -> None:
    """List the snapshots, oldest first."""
    rows = [["NAME", "SIZE", "CREATED", "BACKEND", "REVISION"]]
    for s in snap.list_snapshots(_directory(os.path.abspath(data_dir), directory)):
        m = s.manifest
        rows.append([s.file, _size(s.size), s.taken.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     m.backend if m else f"<unreadable: {s.problem}>",
                     str(m.revision) if m and m.revision else "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@snapshot_command.command("delete")
@_data_dir_option
@_dir_option
@click.argument("names", nargs=-1, required=True)
def delete(data_dir: str, directory: str, names: tuple[str, ...]) -> None:
    """Delete snapshots by their file names (as `kyb snapshot list` shows them)."""
    where = _directory(os.path.abspath(data_dir), directory)
    for n in names:
        if snap.parse_file_name(n) is None or "/" in n:
            raise click.BadParameter(f"{n!r} is not a snapshot's file name", param_hint="NAMES")
        if not os.path.isfile(os.path.join(where, n)):
            raise click.ClickException(f"no snapshot {n!r} in {where}")
    for n in names:
        os.unlink(os.path.join(where, n))
        click.echo(f"snapshot {n} deleted")


@snapshot_command.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--data-dir", required=True, help="A new (absent or empty) data dir to restore into.")
@click.option("--advertise-address", default=None,
              help="etcd: the address the new member's peers reach it on, as `kyb server` will advertise "
                   "[default: this host's primary address].")
@click.option("--etcd-peer-port", default=2380, show_default=True, type=click.IntRange(1, 65535),
              help="etcd: the peer port `kyb server --etcd-peer-port` will give the new member.")
@click.option("--node-name", default=None, help="etcd: the new member's name [default: the host name, as kyb server].")
def restore(file: str, data_dir: str, advertise_address: str | None, etcd_peer_port: int,
            node_name: str | None) -> None:
    """Make a fresh data dir from a snapshot: then `kyb server --data-dir DIR` (SQLite) or
    `kyb server --data-dir DIR --cluster-init` (etcd: a new one-member cluster) serves
    every object of the snapshot."""
    from kybernetes.agent.host import primary_ip
    from kybernetes.apiserver.systemservices import choose_advertise_address
    from kybernetes.storage.etcdmember import url

    name = node_name or this_node()
    data_dir = os.path.abspath(data_dir)
    peer = url("https", choose_advertise_address(advertise_address, "0.0.0.0", primary_ip()), etcd_peer_port)
    try:
        manifest = snap.restore(os.path.abspath(file), data_dir, node=name, peer_url=peer)
    except (snap.SnapshotError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"restored a {manifest.backend} snapshot of {manifest.created} into {data_dir}", err=True)
    if manifest.backend == "sqlite":
        click.echo(f"start it: kyb server --data-dir {data_dir}", err=True)
    else:
        click.echo(f"start it: kyb server --data-dir {data_dir} --cluster-init --etcd-peer-port {etcd_peer_port} "
                   f"(a new one-member cluster; member {name} at {peer})", err=True)


def scheduled_snapshots(policy: snap.SnapshotPolicy | None, backend: Any, data_dir: str,
                        encryption_config: str) -> asyncio.Task[None] | None:
    """The server's task taking scheduled snapshots of `backend` (None when off)."""
    if policy is None:
        return None
    from kybernetes.storage.etcd import EtcdStore

    if isinstance(backend, EtcdStore):
        source = snap.Source("etcd", endpoints=tuple(backend.endpoints), ca_file=backend.ca_file,
                             cert_file=backend.cert_file, key_file=backend.key_file)
    else:
        source = snap.Source("sqlite", db=os.path.join(data_dir, snap.SQLITE_DB))
    directory = policy.directory or os.path.join(data_dir, snap.SNAPSHOT_DIR)
    click.echo(f"scheduled snapshots: {policy.text}, the newest {policy.retention} kept in {directory}", err=True)
    return asyncio.create_task(snap.run_schedule(policy, source, data_dir, this_node(), encryption_config))
