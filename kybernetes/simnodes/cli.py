"""`kyb sim-nodes`: run simulated nodes against an API server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

import click

from kybernetes.api.aiotasks import cancel_and_wait, run_loop, tune_gc
from kybernetes.client import ApiClient, InformerFactory
from kybernetes.simnodes import model
from kybernetes.simnodes.sim import SimulatedNodes

log = logging.getLogger(__name__)


def default_kubeconfig() -> str:
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return env.split(os.pathsep)[0]
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    try:
        return dict(model.parse_label(v) for v in values)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--label") from None


def _taints(values: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        return [model.parse_taint(v) for v in values]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--taint") from None


@click.command("sim-nodes")
@click.option("--kubeconfig", default=default_kubeconfig, show_default="$KUBECONFIG or ~/.kube/config",
              help="Kubeconfig of the cluster to join.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=0), help="Number of nodes.")
@click.option("--name-prefix", default="sim-node-", show_default=True, help="Node names are PREFIX0, PREFIX1, ...")
@click.option("--first-index", default=0, show_default=True, type=click.IntRange(min=0),
              help="Index of the first node (lets several simulators share a cluster).")
@click.option("--cpu", default="32", show_default=True, help="CPU capacity of each node.")
@click.option("--memory", default="256Gi", show_default=True, help="Memory capacity of each node.")
@click.option("--pods", default=110, show_default=True, type=click.IntRange(min=0), help="Pod capacity of each node.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Extra node label (repeatable).")
@click.option("--taint", "taints", multiple=True, metavar="KEY[=VALUE]:EFFECT", help="Node taint (repeatable).")
@click.option("--start-delay", default=1.0, show_default=True, type=float,
              help="Seconds from binding until a pod reports Running.")
@click.option("--job-duration", default=2.0, show_default=True, type=float,
              help="Seconds a restartPolicy Never/OnFailure pod runs before it Succeeds (negative: forever).")
@click.option("--delete-delay", default=0.5, show_default=True, type=float,
              help="Seconds before a terminating pod is removed.")
@click.option("--lease-interval", default=10.0, show_default=True, type=float, help="Seconds between lease renewals.")
@click.option("--node-status-interval", default=60.0, show_default=True, type=float,
              help="Seconds between Ready condition heartbeats.")
@click.option("--max-inflight", default=32, show_default=True, type=click.IntRange(min=1),
              help="Concurrent API requests.")
@click.option("--stats-interval", default=0.0, show_default=True, type=float,
              help="Print counters to stderr every this many seconds (0: never).")
@click.option("--cleanup", is_flag=True, help="Delete the nodes and their leases on exit.")
def sim_nodes_command(kubeconfig: str, count: int, name_prefix: str, first_index: int, cpu: str, memory: str,
                      pods: int, labels: tuple[str, ...], taints: tuple[str, ...], start_delay: float,
                      job_duration: float, delete_delay: float, lease_interval: float, node_status_interval: float,
                      max_inflight: int, stats_interval: float, cleanup: bool) -> None:
    """Run simulated nodes (like kwok) that register, heartbeat and run bound pods."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format='time=%(asctime)s level=%(levelname)s logger=%(name)s msg="%(message)s"')
    if lease_interval <= 0 or node_status_interval <= 0:
        raise click.BadParameter("intervals must be positive")
    options = {
        "count": count, "name_prefix": name_prefix, "cpu": cpu, "memory": memory, "pods": pods,
        "labels": _labels(labels), "taints": _taints(taints), "start_delay": start_delay,
        "lease_interval": lease_interval, "node_status_interval": node_status_interval,
        "job_duration": job_duration if job_duration >= 0 else None, "delete_delay": delete_delay,
        "max_inflight": max_inflight, "first_index": first_index,
    }
    run_loop(_serve(kubeconfig, options, stats_interval, cleanup))


async def _serve(kubeconfig: str, options: dict[str, Any], stats_interval: float, cleanup: bool) -> None:
    client = await ApiClient.from_kubeconfig(kubeconfig, user_agent="kyb-sim-nodes",
                                             max_connections=2 * int(options["max_inflight"]) + 8)
    factory = InformerFactory(client)
    # Alone in its process, the simulator only needs bound pods, so it asks the
    # server to filter; inside `kyb server` it shares the unfiltered informer.
    sims = SimulatedNodes(client, factory, pod_field_selector="spec.nodeName!=", **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tune_gc()
    tasks: list[asyncio.Task[Any]] = []
    try:
        await factory.start()
        await factory.wait_synced(timeout=120)
        tasks.append(loop.create_task(sims.run()))
        if stats_interval > 0:
            tasks.append(loop.create_task(_report(sims, stats_interval)))
        registered = loop.create_task(sims.wait_registered())
        registered.add_done_callback(lambda t: None if t.cancelled() else click.echo(
            f"{len(sims.names)} simulated nodes registered", err=True))
        tasks.append(registered)
        await stop.wait()
    finally:
        await cancel_and_wait(tasks)
        if cleanup:
            try:
                await sims.delete_nodes()
            except Exception as e:  # noqa: BLE001 - exiting anyway; say what was left behind
                log.warning("cleanup of simulated nodes incomplete: %s", e)
        await factory.stop()
        await client.close()


async def _report(sims: SimulatedNodes, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        click.echo(" ".join(f"{k}={v}" for k, v in sims.stats.items()), err=True)
