"""`kyb secrets rotate|status`: the keys that encrypt Secrets (and other configured
resources) at rest, and the server side of opening the store with them.

The server reads the EncryptionConfiguration at `--encryption-provider-config`, by
default `<data-dir>/encryption-config.yaml`, which it creates at first start with a
random AES-CBC key for Secrets (0600). It checks the file every second: after a change
(and at start) it rewrites every object that is not under the first key. `rotate`
therefore only edits the file (a new first key; old keys stay for reads) and waits
until the running server has rewritten everything; `status` reads the store file and
counts objects per provider:key.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse

import click
import yaml

from kybernetes.storage.encryption import (
    DEFAULT_CONFIG_NAME,
    IDENTITY,
    EncryptingStore,
    EncryptionConfig,
    EncryptionConfigError,
    StatusRow,
    ensure_default_config,
    load_config,
    rotate_doc,
    stored_labels,
    summarize,
    write_private,
)
from kybernetes.storage.interface import Store

DEFAULT_DATA_DIR = "/var/lib/kybernetes"


def config_path(data_dir: str, explicit: str) -> str:
    return os.path.abspath(explicit) if explicit else os.path.join(os.path.abspath(data_dir), DEFAULT_CONFIG_NAME)


def open_encryption(data_dir: str, explicit: str, store: Store) -> tuple[str, EncryptingStore]:
    """The server's store with encryption at rest: the configuration at `explicit`, or
    the data dir's (generated at first start). A bad file stops the server with why."""
    path = config_path(data_dir, explicit)
    db = os.path.join(os.path.abspath(data_dir), "state.db")
    if not explicit and not os.path.exists(path) and os.path.exists(db):
        # A new key would not decrypt what the lost file's keys encrypted.
        encrypted = sum(1 for _k, label in stored_labels(db) if label != IDENTITY)
        if encrypted:
            raise click.UsageError(f"{path} is missing but the store holds {encrypted} encrypted objects: "
                                   "restore the file (or pass --encryption-provider-config)")
    if not explicit and ensure_default_config(path):
        click.echo(f"encryption at rest: generated a key for Secrets in {path}", err=True)
    try:
        return path, EncryptingStore(store, load_config(path), path)
    except EncryptionConfigError as e:
        raise click.UsageError(f"--encryption-provider-config: {e}") from None


def _options(fn: object) -> object:
    fn = click.option("--encryption-provider-config", "explicit", default="",
                      help="The server's EncryptionConfiguration [default: <data-dir>/encryption-config.yaml].")(fn)
    return click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True,
                        help="The server's data dir.")(fn)


def _load(path: str) -> EncryptionConfig:
    try:
        return load_config(path)
    except EncryptionConfigError as e:
        raise click.ClickException(str(e)) from None


def _db(data_dir: str) -> str:
    db = os.path.join(os.path.abspath(data_dir), "state.db")
    if not os.path.exists(db):
        raise click.ClickException(f"no store at {db}")
    return db


def _status(data_dir: str, config: EncryptionConfig) -> list[StatusRow]:
    return summarize(stored_labels(_db(data_dir)), config)


def server_running(data_dir: str) -> bool:
    """Whether the server of `data_dir` answers on the address its admin kubeconfig names."""
    try:
        with open(os.path.join(os.path.abspath(data_dir), "kubeconfig.yaml")) as f:
            url = yaml.safe_load(f)["clusters"][0]["cluster"]["server"]
        u = urllib.parse.urlsplit(url)
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 443), timeout=1.0):
            return True
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return False


@click.group("secrets")
def secrets_command() -> None:
    """Encryption of Secrets at rest: rotate the key, see which key each object is under."""


@secrets_command.command("rotate")
@_options
@click.option("--timeout", default=120.0, show_default=True, type=float,
              help="Seconds to wait for the running server to rewrite every object under the new key.")
def rotate(data_dir: str, explicit: str, timeout: float) -> None:
    """Add a new first key (the old ones stay, for reads) and have every encrypted object
    rewritten with it. Remove an old key from the file once `kyb secrets status` shows
    nothing under it."""
    path = config_path(data_dir, explicit)
    _load(path)
    with open(path) as f:
        doc = yaml.safe_load(f)
    try:
        labels = rotate_doc(doc)
    except EncryptionConfigError as e:
        raise click.ClickException(f"{path}: {e}") from None
    write_private(path, yaml.safe_dump(doc, sort_keys=False))
    click.echo(f"new first key: {', '.join(labels)} in {path}")
    if not server_running(data_dir):
        click.echo("no server is running on this data dir: it rewrites every object under the new key when it "
                   "starts")
        return
    config = _load(path)
    deadline = time.monotonic() + timeout
    while True:
        old = sum(r.objects for r in _status(data_dir, config) if not r.current)
        if old == 0:
            click.echo("every object is stored under the new key")
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"{old} objects are still under older keys after {timeout:.0f}s; "
                                       "see `kyb secrets status`")
        time.sleep(0.5)


@secrets_command.command("status")
@_options
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--objects", is_flag=True, help="List each object (its storage key) with the provider:key it is under.")
def status(data_dir: str, explicit: str, output: str, objects: bool) -> None:
    """Objects per resource and provider:key; CURRENT says whether writes use that key
    (objects under other keys are rewritten by the running server)."""
    config = _load(config_path(data_dir, explicit))
    if objects:
        each = [(key, label) for key, label in stored_labels(_db(data_dir))
                if label != IDENTITY or config.for_key(key) is not None]
        if output == "json":
            click.echo(json.dumps([{"key": k, "label": lab} for k, lab in each], indent=2))
        else:
            for key, label in each:
                click.echo(f"{label}\t{key}")
        return
    rows = _status(data_dir, config)
    if output == "json":
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    width = max([len(r.resource) for r in rows] + [8])
    lwidth = max([len(r.label) for r in rows] + [12])
    click.echo(f"{'RESOURCE':<{width}}  {'PROVIDER:KEY':<{lwidth}}  {'OBJECTS':>7}  CURRENT")
    for r in rows:
        click.echo(f"{r.resource:<{width}}  {r.label:<{lwidth}}  {r.objects:>7}  {'yes' if r.current else 'no'}")
