"""The `kyb` command: `kyb server` runs the API server (all in one, like k3s)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

import click


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format='time=%(asctime)s level=%(levelname)s logger=%(name)s msg="%(message)s"')


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """kybernetes: a container orchestrator that speaks the Kubernetes API."""
    _setup_logging(verbose)


@main.command()
@click.option("--data-dir", default="/var/lib/kybernetes", show_default=True, help="State, PKI and kubeconfig.")
@click.option("--port", default=6443, show_default=True, type=int, help="HTTPS port of the API server.")
@click.option("--bind-address", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--tls-san", multiple=True, help="Extra host name or IP for the serving certificate.")
@click.option("--compact-interval", default=300, show_default=True, type=int,
              help="Seconds between compactions of old revisions.")
@click.option("--compact-retention", default=1000, show_default=True, type=int,
              help="Revisions of history kept behind the newest one at each compaction.")
def server(data_dir: str, port: int, bind_address: str, tls_san: tuple[str, ...], compact_interval: int,
           compact_retention: int) -> None:
    """Run the API server on an embedded SQLite store and write an admin kubeconfig."""
    asyncio.run(_run_server(data_dir, port, bind_address, list(tls_san), compact_interval, compact_retention))


async def _run_server(data_dir: str, port: int, bind: str, sans: list[str], compact_interval: int,
                      compact_retention: int) -> None:
    from kybernetes.apiserver.app import ApiServer, default_hosts
    from kybernetes.storage.sqlite import SQLiteStore

    started = time.monotonic()
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    store = SQLiteStore(os.path.join(data_dir, "state.db"))
    srv = ApiServer(data_dir, store, port=port, bind=bind, hosts=default_hosts() + sans)
    await srv.start()
    kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
    srv.write_kubeconfig(kubeconfig)
    elapsed = time.monotonic() - started
    click.echo(f"kybernetes API server ready at {srv.server_url()} in {elapsed:.2f}s", err=True)
    click.echo(f"admin kubeconfig: {kubeconfig}\n  export KUBECONFIG={kubeconfig}\n  kubectl get namespaces",
               err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    compactor = asyncio.create_task(_compact_forever(store, compact_interval, compact_retention))
    await stop.wait()
    compactor.cancel()
    await srv.stop()


async def _compact_forever(store: object, interval: int, retention: int) -> None:
    while True:
        await asyncio.sleep(interval)
        rev = store.current_revision() - retention  # type: ignore[attr-defined]
        if rev > store.compacted_revision():  # type: ignore[attr-defined]
            try:
                await store.compact(rev)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - compaction is best effort; the next round retries
                logging.getLogger("kybernetes.compactor").exception("compaction failed")


if __name__ == "__main__":
    main()
