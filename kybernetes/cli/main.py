"""The `kyb` command.

`kyb server` runs the API server (all in one, like k3s: it also starts the
controller manager and the scheduler as child processes talking to it over
HTTPS); `kyb controller-manager`, `kyb scheduler` and `kyb sim-nodes` run one
component against any API server given a kubeconfig.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from kybernetes.api.aiotasks import cancel_and_wait, run_loop, tune_gc
from kybernetes.api.children import popen_dying_with_parent
from kybernetes.cli.audit_flags import audit_flags, auditor_from_flags
from kybernetes.cli.leader_flags import (
    leader_election_flags,
    leader_election_identity,
    leader_election_times,
    process_identity,
)
from kybernetes.cli.secrets import secrets_command
from kybernetes.cli.snapshot import snapshot_command
from kybernetes.cli.token import token_command
from kybernetes.simnodes.cli import sim_nodes_command


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format='time=%(asctime)s level=%(levelname)s logger=%(name)s msg="%(message)s"')


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """kybernetes: a container orchestrator that speaks the Kubernetes API."""
    ctx.obj = {"verbose": verbose}
    _setup_logging(verbose)


SHUTDOWN_GRACE_SECONDS = 10.0


def _exit_if_stuck() -> None:
    """A component asked to stop must stop: if a clean shutdown hangs, exit anyway."""
    import threading

    def hard_exit() -> None:
        logging.getLogger("kybernetes").warning("shutdown took over %.0fs; exiting", SHUTDOWN_GRACE_SECONDS)
        os._exit(0)

    timer = threading.Timer(SHUTDOWN_GRACE_SECONDS, hard_exit)
    timer.daemon = True
    timer.start()


def _run_until_signal(coro_fn: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if not stop.is_set():
                _exit_if_stuck()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        tune_gc()
        await coro_fn(stop)

    run_loop(runner())


# HTTP/1.1 needs a connection per request in flight, and each TLS connection costs
# memory at both ends (~80 KB here, ~60 KB in the server). The controller manager
# holds a watch per resource kind (the garbage collector watches them all) plus its
# writes; the scheduler three watches (pods, nodes, PodDisruptionBudgets) plus bindings
# and events. More did not go faster.
CONTROLLER_MANAGER_CONNECTIONS = 64
SCHEDULER_CONNECTIONS = 49


# -- server ---------------------------------------------------------------------------------


@main.command()
@click.option("--data-dir", default="/var/lib/kybernetes", show_default=True, help="State, PKI and kubeconfig.")
@click.option("--port", default=6443, show_default=True, type=int, help="HTTPS port of the API server.")
@click.option("--bind-address", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--tls-san", multiple=True, help="Extra host name or IP for the serving certificate.")
@click.option("--compact-interval", default=300, show_default=True, type=int,
              help="Seconds between compactions of old revisions.")
@click.option("--compact-retention", default=1000, show_default=True, type=int,
              help="Revisions of history kept behind the newest one at each compaction.")
@click.option("--default-toleration-seconds", default=300, show_default=True, type=int,
              help="tolerationSeconds of the not-ready/unreachable tolerations every pod gets.")
@click.option("--disable-controllers", is_flag=True, help="Do not start the controller manager.")
@click.option("--disable-scheduler", is_flag=True, help="Do not start the scheduler.")
@click.option("--privileged-components", is_flag=True,
              help="Run the controller manager and scheduler with the admin kubeconfig (system:masters) instead "
                   "of their own least-privileged users (system:kube-controller-manager, system:kube-scheduler).")
@click.option("--node-monitor-grace-period", default=40, show_default=True, type=int,
              help="Seconds without a node heartbeat before the node is marked unreachable.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, help="Pod network of the cluster.")
@click.option("--disable-agent", is_flag=True, help="Do not run pods on this machine (no node agent).")
@click.option("--encryption-provider-config", expose_value=False, metavar="PATH",
              callback=lambda ctx, _p, v: ctx.meta.__setitem__("encryption_provider_config", v or ""),
              help="EncryptionConfiguration of the resources encrypted at rest (reloaded when it changes) "
                   "[default: <data-dir>/encryption-config.yaml, made at first start: Secrets under AES-CBC].")
@click.option("--service-cidr", default="10.43.0.0/16", show_default=True,
              help="Range of Service cluster IPs; its first address is the kubernetes Service's.")
@click.option("--service-node-port-range", default="30000-32767", show_default=True,
              help="Range of ports for NodePort and LoadBalancer Services.")
@click.option("--cluster-dns", default=None,
              help="Cluster IP of the kube-dns Service (default: the 10th address of --service-cidr).")
@click.option("--advertise-address", default=None,
              help="Address of this API server in the kubernetes Service's endpoints (default: --bind-address "
                   "unless unspecified or loopback, else this host's primary IPv4 address).")
@click.option("--max-requests-inflight", default=100, show_default=True, type=click.IntRange(min=0),
              help="Seats for read-only requests in flight, shared by priority levels (0: no limit).")
@click.option("--max-mutating-requests-inflight", default=200, show_default=True, type=click.IntRange(min=0),
              help="Seats for mutating requests in flight, shared by priority levels (0: no limit).")
@click.option("--flow-queue-length", default=50, show_default=True, type=click.IntRange(min=0),
              help="Requests of one flow (user and kind of request) that may wait for a seat; more get 429.")
@click.option("--flow-queue-wait", default=15.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds a request may wait for a seat before it gets 429.")
@click.option("--request-header-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds a new connection has to finish TLS and send its first request's headers (0: none).")
@click.option("--idle-connection-timeout", default=90.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds a kept-alive connection may sit idle between requests.")
@click.option("--api-workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes serving the API on the port: this one (the only writer) and N-1 workers that "
                   "serve reads from their own cache and forward writes here. Each worker holds a copy of the "
                   "cache (memory); 2 pays on a read-heavy server with a core to spare (benchmarks/README.md).")
@click.option("--service-account-issuer", multiple=True, metavar="URL",
              help="Issuer (`iss`) of ServiceAccount tokens [default: https://kubernetes.default.svc.cluster.local]. "
                   "Repeatable: the first signs new tokens, every one is accepted.")
@click.option("--api-audiences", multiple=True, metavar="AUD[,AUD...]",
              help="Audiences the API server accepts and gives new tokens by default [default: the issuer].")
@click.option("--service-account-max-token-expiration", default="", metavar="DURATION",
              help="Longest token a TokenRequest gets (e.g. 48h; 1h to 2^32 s) [default: no limit].")
@click.option("--service-account-extend-token-expiration/--no-service-account-extend-token-expiration",
              default=True, show_default=True,
              help="Pod tokens asked for with 3607 s (the automatic volume's) are good for a year and carry "
                   "`warnafter`, as kube-apiserver does by default.")
@click.option("--cluster-init", is_flag=True,
              help="Store the cluster in an embedded etcd member (Debian's etcd-server binary, run as a child "
                   "process, data in <data-dir>/etcd) instead of SQLite; later starts on this data dir run it again.")
@click.option("--etcd-client-port", default=2379, show_default=True, type=int,
              help="Port of the embedded etcd member's clients (on 127.0.0.1 only).")
@click.option("--etcd-peer-port", default=2380, show_default=True, type=int,
              help="Port other etcd members reach the embedded one on (on --advertise-address).")
@click.option("--datastore-endpoint", default="", metavar="URL[,URL...]",
              help="Store the cluster in this external etcd cluster (its members' client URLs) instead of SQLite.")
@click.option("--datastore-cafile", default="", help="CA that verifies the --datastore-endpoint members (PEM).")
@click.option("--datastore-certfile", default="", help="Client certificate for --datastore-endpoint (PEM).")
@click.option("--datastore-keyfile", default="", help="The key of --datastore-certfile (PEM).")
@click.option("--snapshot-schedule", default=None, expose_value=False, metavar="CRON|INTERVAL",
              callback=lambda ctx, _p, v: ctx.meta.__setitem__("snapshot_schedule", v),
              help="When the server snapshots its store (see kyb snapshot): a cron expression in UTC "
                   "('0 */12 * * *'), @daily/@hourly..., or an interval (6h); 'off' for none [default: every 12 h "
                   "on an embedded etcd member, as k3s; off on SQLite and on an external etcd].")
@click.option("--snapshot-retention", default=5, show_default=True, type=click.IntRange(min=1), expose_value=False,
              callback=lambda ctx, _p, v: ctx.meta.__setitem__("snapshot_retention", v),
              help="Scheduled snapshots kept (the newest); on-demand ones (kyb snapshot save) are never pruned.")
@click.option("--snapshot-dir", default="", expose_value=False,
              callback=lambda ctx, _p, v: ctx.meta.__setitem__("snapshot_dir", v),
              help="Where scheduled snapshots go [default: <data-dir>/snapshots].")
@click.option("--server", "join_server", default="", metavar="URL",
              help="Join the cluster of the server at URL (https://HOST:6443) with --token: take its CA and "
                   "keys, add an etcd member here (--etcd-client-port/--etcd-peer-port) and serve the API on it.")
@click.option("--token", "server_token", default="", envvar="KYB_TOKEN",
              help="The cluster's server token: seals the CA and keys kept in the store, and lets --server join "
                   "[default: <data-dir>/token, made at the first start on etcd].")
@click.option("--ca-cert-hash", "join_ca_cert_hash", default="", metavar="sha256:HASH",
              help="Pin of the --server's CA, when --token is a bare secret (a K10... token carries it).")
@audit_flags
@leader_election_flags(identity=False)
@click.option("--admission-control-config-file", expose_value=False, metavar="PATH",
              callback=lambda ctx, _p, v: ctx.meta.__setitem__("pod_security", _pod_security_config(v)),
              help="AdmissionConfiguration file, as kube-apiserver reads it: its PodSecurity entry "
                   "(PodSecurityConfiguration) sets the levels of unlabelled namespaces and the exempt users, "
                   "runtime classes and namespaces [default: every level privileged, nothing exempt].")
@click.pass_context
def server(ctx: click.Context, data_dir: str, port: int, bind_address: str, tls_san: tuple[str, ...],
           compact_interval: int, compact_retention: int, default_toleration_seconds: int,
           disable_controllers: bool, disable_scheduler: bool, node_monitor_grace_period: int,
           cluster_cidr: str, disable_agent: bool, service_cidr: str, service_node_port_range: str,
           cluster_dns: str | None, advertise_address: str | None, max_requests_inflight: int = 100,
           max_mutating_requests_inflight: int = 200, flow_queue_length: int = 50, flow_queue_wait: float = 15.0,
           request_header_timeout: float = 10.0, idle_connection_timeout: float = 90.0,
           api_workers: int = 1, privileged_components: bool = False,
           service_account_issuer: tuple[str, ...] = (), api_audiences: tuple[str, ...] = (),
           service_account_max_token_expiration: str = "",
           service_account_extend_token_expiration: bool = True, cluster_init: bool = False,
           etcd_client_port: int = 2379, etcd_peer_port: int = 2380, datastore_endpoint: str = "",
           datastore_cafile: str = "", datastore_certfile: str = "", datastore_keyfile: str = "",
           join_server: str = "", server_token: str = "", join_ca_cert_hash: str = "") -> None:
    """Run the API server on an embedded SQLite store (or etcd), with the control plane, and write an admin kubeconfig."""
    from kybernetes.agent.host import primary_ip
    from kybernetes.api.kinds import new_strategies
    from kybernetes.api.serviceaccounts import TokenOptions, parse_duration_seconds
    from kybernetes.apiserver.servicealloc import service_network
    from kybernetes.apiserver.systemservices import choose_advertise_address

    try:
        max_expiration = (parse_duration_seconds(service_account_max_token_expiration)
                          if service_account_max_token_expiration else None)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--service-account-max-token-expiration") from None
    token_options = TokenOptions(
        issuers=service_account_issuer or TokenOptions().issuers,
        api_audiences=tuple(a.strip() for v in api_audiences for a in v.split(",") if a.strip()),
        max_expiration=max_expiration or None, extend_expiration=service_account_extend_token_expiration)
    if token_options.problems():
        raise click.UsageError("; ".join(token_options.problems()))

    try:
        network = service_network(service_cidr, service_node_port_range, cluster_dns)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    advertise = choose_advertise_address(advertise_address, bind_address, primary_ip())
    from kybernetes.storage.etcdmember import choose_datastore, has_member_data

    try:
        datastore = choose_datastore(
            cluster_init=cluster_init, endpoint=datastore_endpoint, api_workers=api_workers,
            member_data=has_member_data(os.path.join(data_dir, "etcd")),
            sqlite_data=os.path.exists(os.path.join(data_dir, "state.db")), ca_file=datastore_cafile,
            cert_file=datastore_certfile, key_file=datastore_keyfile, client_port=etcd_client_port,
            peer_port=etcd_peer_port, join_url=join_server)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if join_server and not server_token and not os.path.exists(os.path.join(data_dir, "token")):
        raise click.UsageError("--server needs --token (the first server's <data-dir>/token)")
    from kybernetes.storage.snapshots import choose_policy

    try:
        snapshot_policy = choose_policy(ctx.meta.get("snapshot_schedule"), ctx.meta.get("snapshot_retention", 5),
                                        ctx.meta.get("snapshot_dir", ""), datastore.kind)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--snapshot-schedule") from None
    auditor = auditor_from_flags(ctx, data_dir)
    kinds = new_strategies(default_toleration_seconds=default_toleration_seconds)
    children: list[list[str]] = []
    node_kubeconfig: tuple[str, str] | None = None
    verbose = ["-v"] * int((ctx.obj or {}).get("verbose", 0))
    admin_kubeconfig = os.path.join(os.path.abspath(data_dir), "kubeconfig.yaml")
    # Each component's own identity (a certificate the server writes at start, see
    # _run_server), bound by the bootstrap policy to just what it does; the admin
    # kubeconfig stays the only system:masters credential.
    component_kubeconfigs: list[tuple[str, str]] = []

    def component_kubeconfig(name: str, user: str) -> str:
        if privileged_components:
            return admin_kubeconfig
        path = os.path.join(os.path.abspath(data_dir), name, "kubeconfig.yaml")
        component_kubeconfigs.append((path, user))
        return path

    from kybernetes.apiserver.pki import CONTROLLER_MANAGER_USER, SCHEDULER_USER

    base = [sys.executable, "-m", "kybernetes.cli.main", *verbose]
    # The children's leases carry this server's name, which stays theirs across the restarts
    # it makes (cli/leader_flags.py).
    leading = [*leader_election_times(ctx).argv(), "--leader-elect-identity", process_identity()]
    if not disable_controllers:
        from kybernetes.apiserver.pki import pki_paths

        signer = pki_paths(os.path.abspath(data_dir))
        kubeconfig = component_kubeconfig("controller-manager", CONTROLLER_MANAGER_USER)
        children.append([*base, "controller-manager", "--kubeconfig", kubeconfig,
                         "--node-monitor-grace-period", str(node_monitor_grace_period),
                         "--cluster-cidr", cluster_cidr,
                         "--cluster-signing-cert-file", signer.ca_cert, "--cluster-signing-key-file", signer.ca_key,
                         "--service-account-private-key-file", os.path.join(signer.dir, "sa.key"), *leading])
    if not disable_scheduler:
        children.append([*base, "scheduler", "--kubeconfig", component_kubeconfig("scheduler", SCHEDULER_USER),
                         *leading])
    if not disable_agent:
        from kybernetes.agent.containerd import missing_prerequisites

        why = missing_prerequisites()
        if why is None:
            # Like k3s: the server is also a node that runs pods, as its own node identity
            # (system:node:<host name>, not the admin's): the server writes its kubeconfig at start.
            agent_dir = os.path.join(os.path.abspath(data_dir), "agent")
            node_kubeconfig = (socket.gethostname().lower(), os.path.join(agent_dir, "kubeconfig.yaml"))
            children.append([*base, "agent", "--kubeconfig", node_kubeconfig[1], "--node-name", node_kubeconfig[0],
                             "--data-dir", agent_dir])
            if datastore.kind == "embedded-etcd":
                # k3s' way to remove a server for good: deleting its Node removes its etcd member.
                from kybernetes.apiserver.serverjoin import MEMBER_LABEL
                from kybernetes.storage.etcdmember import has_member_data as _member_data

                joining = bool(datastore.join_url) and not _member_data(os.path.join(data_dir, "etcd"))
                children[-1] += ["--node-labels", f"{MEMBER_LABEL}={_member_name(os.path.abspath(data_dir), joining)}"]
        else:
            click.echo(f"node agent not started: {why}", err=True)

    from kybernetes.apiserver.app import ServingOptions
    from kybernetes.apiserver.flowcontrol import FlowControlConfig

    serving = ServingOptions(
        header_timeout=request_header_timeout, idle_timeout=idle_connection_timeout,
        flow=FlowControlConfig(max_requests_inflight=max_requests_inflight,
                               max_mutating_requests_inflight=max_mutating_requests_inflight,
                               queue_length=flow_queue_length, queue_wait=flow_queue_wait))

    pool_config = None
    if api_workers > 1:
        from kybernetes.apiserver.workers import WorkerConfig, serving_dict

        serving = dataclasses.replace(serving, reuse_port=True)
        pool_config = WorkerConfig(os.path.abspath(data_dir), port, bind_address, advertise, service_cidr,
                                   service_node_port_range, cluster_dns, default_toleration_seconds,
                                   not disable_controllers, serving_dict(serving),
                                   service_accounts=token_options.to_dict())

    async def run(stop: asyncio.Event) -> None:
        await _run_server(stop, data_dir, port, bind_address, list(tls_san), compact_interval, compact_retention,
                          children, network, advertise, serving, kinds,
                          # The controller manager runs the garbage collector.
                          gc_enabled=not disable_controllers,
                          encryption_config=ctx.meta.get("encryption_provider_config", ""),
                          workers=(api_workers, pool_config, base) if pool_config is not None else None,
                          node_kubeconfig=node_kubeconfig, component_kubeconfigs=component_kubeconfigs,
                          service_accounts=token_options, audit=auditor,
                          pod_security=ctx.meta.get("pod_security"), datastore=datastore,
                          server_token=server_token, join_ca_cert_hash=join_ca_cert_hash,
                          snapshots=snapshot_policy)

    _run_until_signal(run)


def _pod_security_config(path: str | None) -> Any:
    """The PodSecurity configuration of `--admission-control-config-file`, or None."""
    if not path:
        return None
    from kybernetes.apiserver.podsecurity import load_admission_config

    try:
        return load_admission_config(path)
    except (OSError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint="--admission-control-config-file") from None


if TYPE_CHECKING:
    from kybernetes.api.kinds import Strategies
    from kybernetes.apiserver.app import ServingOptions
    from kybernetes.apiserver.servicealloc import ServiceNetwork


async def _run_server(stop: asyncio.Event, data_dir: str, port: int, bind: str, sans: list[str],
                      compact_interval: int, compact_retention: int, children: list[list[str]],
                      network: ServiceNetwork, advertise: str, serving: ServingOptions | None = None,
                      kinds: Strategies | None = None, gc_enabled: bool = False, encryption_config: str = "",
                      workers: tuple[int, Any, list[str]] | None = None,
                      node_kubeconfig: tuple[str, str] | None = None,
                      component_kubeconfigs: list[tuple[str, str]] | None = None,
                      service_accounts: Any = None, audit: Any = None, pod_security: Any = None,
                      datastore: Any = None, server_token: str = "", join_ca_cert_hash: str = "",
                      snapshots: Any = None) -> None:
    from kybernetes.apiserver.app import ApiServer, default_hosts
    from kybernetes.apiserver.pki import secure_data_dir

    started = time.monotonic()
    data_dir = os.path.abspath(data_dir)
    fixed = secure_data_dir(data_dir)
    if fixed:
        logging.getLogger("kybernetes.server").warning(
            "made %d files in the data dir private to their owner (0600, dirs 0700): %s", len(fixed),
            ", ".join(os.path.relpath(p, data_dir) for p in fixed[:10]))
    from kybernetes.cli.secrets import open_encryption

    backend, member = await _open_datastore(data_dir, datastore, advertise, server_token, join_ca_cert_hash)
    own_routes = {}
    if member is not None or (datastore is not None and datastore.kind == "external-etcd"):
        own_routes = await _sync_bootstrap(data_dir, backend, member, server_token)
    encryption_config, store = open_encryption(data_dir, encryption_config, backend)
    from kybernetes.storage.snapshots import record_datastore

    record_datastore(data_dir, backend)  # how `kyb snapshot save` reaches this store
    pool = None
    if workers is not None:
        from kybernetes.apiserver.workers import WorkerPool

        try:
            pool = WorkerPool(data_dir, workers[0], dataclasses.replace(workers[1], encryption_config=encryption_config),
                              workers[2])
        except OSError as e:  # e.g. a full disk: serve from this process alone
            click.echo(f"API workers not started: {e}", err=True)
    # The kubernetes Service's address is how pods reach the API server: the certificate
    # must name it, as it must name the advertised address.
    sans = [*sans, str(network.first_ip), advertise]
    served = pool.wrap(store) if pool is not None else store
    srv = ApiServer(data_dir, served, port=port, bind=bind,
                    hosts=default_hosts() + sans,
                    service_network=network, advertise_address=advertise, serving=serving,
                    kinds=kinds, gc_enabled=gc_enabled, service_accounts=service_accounts)
    srv.audit = audit
    srv.own_auth_routes.update(own_routes)
    if pod_security is not None:
        srv.pod_security.config = pod_security
    await srv.start()
    if pool is not None:
        await pool.start(srv)
    kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
    try:
        srv.write_kubeconfig(kubeconfig)
    except OSError as e:
        if not os.path.exists(kubeconfig):
            raise
        # A full disk must not stop the server: it serves reads, and the kubeconfig from
        # the last start still works (the CA and admin credentials did not change).
        logging.getLogger("kybernetes.server").error(
            "could not rewrite %s (%s); keeping the existing one", kubeconfig, e.strerror or e)
    if node_kubeconfig is not None:
        # A fresh certificate at every start: the embedded agent's credential never outlives its CA.
        from kybernetes.apiserver.pki import write_node_kubeconfig

        assert srv.pki is not None
        write_node_kubeconfig(srv.pki, node_kubeconfig[1], srv.server_url(), node_kubeconfig[0])
    if component_kubeconfigs:
        # Fresh at every start too: a component's certificate is as old as the server's run.
        from kybernetes.apiserver.pki import write_component_kubeconfig

        assert srv.pki is not None
        for path, user in component_kubeconfigs:
            try:
                write_component_kubeconfig(srv.pki, path, srv.server_url(), user)
            except OSError as e:
                if not os.path.exists(path):
                    raise
                # As the admin kubeconfig above: the last start's certificate still works.
                logging.getLogger("kybernetes.server").error(
                    "could not rewrite %s (%s); keeping the existing one", path, e.strerror or e)
    elapsed = time.monotonic() - started
    click.echo(f"kybernetes API server ready at {srv.server_url()} in {elapsed:.2f}s", err=True)
    click.echo(f"admin kubeconfig: {kubeconfig}\n  export KUBECONFIG={kubeconfig}\n  kubectl get namespaces",
               err=True)
    procs = [_spawn(argv, os.path.join(data_dir, f"{argv[argv.index('--kubeconfig') - 1]}.log"))
             for argv in children]
    compactor = asyncio.create_task(_compact_forever(served, compact_interval, compact_retention))
    from kybernetes.storage.encryption import follow_config

    # Reloads the keys when the file changes and rewrites objects under older keys.
    rekeyer = asyncio.create_task(follow_config(store, served))
    watchdog = asyncio.create_task(_restart_children(procs, children, data_dir))
    member_watchdog = asyncio.create_task(member.supervise()) if member is not None else None
    promoter = remover = None
    if member is not None:
        from kybernetes.apiserver.serverjoin import MemberRemover, keep_promoting

        promoter = asyncio.create_task(keep_promoting(backend))
        remover = asyncio.create_task(MemberRemover(srv.cache, backend, member.cfg.name).run())
    from kybernetes.cli.snapshot import scheduled_snapshots

    snapshotter = scheduled_snapshots(snapshots, backend, data_dir, encryption_config)
    await stop.wait()
    if snapshotter is not None:
        snapshotter.cancel()
    watchdog.cancel()
    if member_watchdog is not None:
        member_watchdog.cancel()
    if promoter is not None:
        promoter.cancel()
    if remover is not None:
        remover.cancel()
    compactor.cancel()
    rekeyer.cancel()
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            # The agent stops its private containerd on the way out.
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if pool is not None:
        await pool.stop()
    await srv.stop()
    if member is not None:
        await member.stop()


async def _sync_bootstrap(data_dir: str, backend: Any, member: Any, token: str) -> dict[str, Any]:
    """Make this server's CA and keys the cluster's (kept in the store sealed with the server
    token, see apiserver/serverjoin.py); the routes answering other servers' joins."""
    from kybernetes.api.bootstraptoken import ca_cert_hash
    from kybernetes.apiserver import serverjoin
    from kybernetes.apiserver.pki import ensure_cluster_ca, read_ca_pem
    from kybernetes.apiserver.serviceaccounts import ensure_signing_key
    from kybernetes.storage import bootstrapdata as bd
    from kybernetes.storage.encryption import DEFAULT_CONFIG_NAME, ensure_default_config

    saved = serverjoin.read_token(data_dir)
    try:
        tok = bd.parse_token(token or saved) if (token or saved) else bd.ServerToken(bd.new_secret())
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--token") from None
    await backend.start()
    if await backend.get(bd.storage_key(tok.secret)) is None and \
            not (await backend.list(bd.PREFIX)).items:
        # The first server of the cluster: what it shares exists before it is stored.
        pki = await asyncio.to_thread(ensure_cluster_ca, data_dir)
        await asyncio.to_thread(ensure_signing_key, pki.dir)
        await asyncio.to_thread(ensure_default_config, os.path.join(data_dir, DEFAULT_CONFIG_NAME))
    try:
        what = await serverjoin.sync_bootstrap(backend, data_dir, tok.secret)
    except bd.BootstrapError as e:
        await backend.close()
        if member is not None:
            await member.stop()
        raise click.ClickException(str(e)) from None
    click.echo(f"cluster bootstrap data: {what}", err=True)
    if not saved or bd.parse_token(saved).secret != tok.secret or not bd.parse_token(saved).ca_hash:
        from kybernetes.apiserver.pki import pki_paths

        full = bd.ServerToken(tok.secret, ca_cert_hash(read_ca_pem(pki_paths(data_dir))))
        serverjoin.write_token(data_dir, full.full())
        click.echo(f"server token (joins with --server ... --token): {os.path.join(data_dir, bd.TOKEN_FILE)}",
                   err=True)
    endpoint = serverjoin.BootstrapEndpoint(backend, tok.secret, membership=member is not None)
    return {serverjoin.PATH: endpoint.handle}


def _member_name(data_dir: str, joining: bool) -> str:
    """The embedded member's etcd name, kept in <data-dir>/etcd-name: the host name for the
    founding member (as before), with a random suffix for one that joins, so that servers
    sharing a host name (or a host) never clash."""
    path = os.path.join(data_dir, "etcd-name")
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    try:
        with open(path, encoding="utf-8") as f:
            name = f.read().strip()
        if name:
            return name
    except FileNotFoundError:
        pass
    name = socket.gethostname().lower()
    if joining:
        name = f"{name}-{os.urandom(4).hex()}"
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
        f.write(name + "\n")
    return name


async def _open_datastore(data_dir: str, datastore: Any, advertise: str, token: str = "",
                          ca_cert_hash: str = "") -> tuple[Any, Any]:
    """The server's backend store (not started) and the embedded etcd member it runs on, if any:
    SQLite in the data dir, an external etcd, or a member started here and healthy (joining
    the cluster of `datastore.join_url` first when it has never run)."""
    from kybernetes.storage.etcdmember import DatastoreChoice

    datastore = datastore or DatastoreChoice("sqlite")
    if datastore.kind == "sqlite":
        from kybernetes.storage.sqlite import SQLiteStore

        return SQLiteStore(os.path.join(data_dir, "state.db")), None
    from kybernetes.storage.etcd import EtcdStore

    if datastore.kind == "external-etcd":
        return EtcdStore(list(datastore.endpoints), ca_file=datastore.ca_file, cert_file=datastore.cert_file,
                         key_file=datastore.key_file), None
    from kybernetes.apiserver.pki import ensure_etcd_pki, etcd_pki_paths
    from kybernetes.storage.etcdmember import EtcdMember, MemberConfig, MemberFailed, MemberTls
    from kybernetes.storage.etcdmember import has_member_data as _has_member_data

    data_dir = os.path.abspath(data_dir)  # the member runs in its socket's directory
    joining = bool(datastore.join_url) and not _has_member_data(os.path.join(data_dir, "etcd"))
    paths = etcd_pki_paths(data_dir)
    cfg = MemberConfig(_member_name(data_dir, joining), os.path.join(data_dir, "etcd"),
                       MemberTls(paths.ca_cert, paths.server_cert, paths.server_key, paths.peer_cert, paths.peer_key),
                       peer_host=advertise, client_port=datastore.client_port, peer_port=datastore.peer_port,
                       socket_dir=os.path.join(data_dir, "etcd-client"))
    if joining:
        from kybernetes.apiserver import serverjoin

        try:
            joined = await serverjoin.join_cluster(datastore.join_url, token or serverjoin.read_token(data_dir),
                                                   cfg.name, cfg.peer_url, ca_cert_hash)
        except serverjoin.JoinError as e:
            raise click.ClickException(f"not joining {datastore.join_url}: {e}") from None
        # The cluster's CAs and keys before any certificate is issued here.
        serverjoin.write_files(data_dir, joined.files)
        serverjoin.write_synced(data_dir, joined.files)
        cfg = dataclasses.replace(cfg, existing_cluster=joined.members)
        with open(os.open(os.path.join(data_dir, "etcd-learner"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w", encoding="utf-8") as f:
            f.write(datastore.join_url + "\n")
        click.echo(f"joined {datastore.join_url}: etcd member {cfg.name} added at {cfg.peer_url} "
                   f"({len(joined.members)} members)", err=True)
    paths = ensure_etcd_pki(data_dir, [advertise])
    # Started from this (the main) thread: the member dies with the server, even by kill -9.
    member = EtcdMember(cfg, os.path.join(data_dir, "etcd.log"), paths.client_cert, paths.client_key,
                        die_with_parent=True)
    try:
        member.start()
        took = await member.wait_healthy(progress=lambda line: click.echo(line, err=True))
    except MemberFailed as e:
        await member.stop()
        raise click.ClickException(str(e)) from None
    again = ("joined its cluster as a learner" if joining else
             "restarted on its data" if member.restarted_existing else "started a new cluster")
    click.echo(f"etcd member {again} at {cfg.client_url} in {took:.2f}s", err=True)
    learner_mark = os.path.join(data_dir, "etcd-learner")
    if os.path.exists(learner_mark):
        # Its member serves no client calls until the servers promote it.
        from kybernetes.apiserver import serverjoin
        from kybernetes.apiserver.pki import pki_paths, read_ca_pem

        with open(learner_mark, encoding="utf-8") as f:
            via = f.read().strip()
        try:
            await serverjoin.wait_promoted(via, token or serverjoin.read_token(data_dir), cfg.name,
                                           read_ca_pem(pki_paths(data_dir)))
        except serverjoin.JoinError as e:
            await member.stop()
            raise click.ClickException(str(e)) from None
        os.unlink(learner_mark)
        click.echo(f"etcd member {cfg.name} promoted to a voting member", err=True)
    return EtcdStore([cfg.local_endpoint], ca_file=paths.ca_cert, cert_file=paths.client_cert,
                     key_file=paths.client_key), member


def _spawn(argv: list[str], log_path: str) -> subprocess.Popen[bytes]:
    # Private like everything in the data dir.
    log = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    try:
        return popen_dying_with_parent(argv, stdout=log, stderr=log)
    finally:
        log.close()


async def _restart_children(procs: list[subprocess.Popen[bytes]], argvs: list[list[str]], data_dir: str) -> None:
    """Restart a control-plane child that died, as a supervisor would."""
    while True:
        await asyncio.sleep(1.0)
        for i, p in enumerate(procs):
            if p.poll() is not None:
                name = argvs[i][argvs[i].index("--kubeconfig") - 1]
                logging.getLogger("kybernetes.server").warning("%s exited with %s; restarting", name,
                                                               p.returncode)
                procs[i] = _spawn(argvs[i], os.path.join(data_dir, f"{name}.log"))


async def _compact_forever(store: object, interval: int, retention: int) -> None:
    while True:
        await asyncio.sleep(interval)
        rev = store.current_revision() - retention  # type: ignore[attr-defined]
        if rev > store.compacted_revision():  # type: ignore[attr-defined]
            try:
                await store.compact(rev)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - compaction is best effort; the next round retries
                logging.getLogger("kybernetes.compactor").exception("compaction failed")


@main.command("api-worker", hidden=True)
@click.option("--config", "config_json", required=True, help="The primary's WorkerConfig, as JSON.")
@click.option("--wake-fd", required=True, type=int, help="Pipe the primary writes to after each commit.")
def api_worker(config_json: str, wake_fd: int) -> None:
    """An API worker process, started by `kyb server --api-workers N` (not run by hand)."""
    from kybernetes.apiserver.workers import WorkerConfig, run_worker

    config = WorkerConfig.from_json(config_json)
    status = 0

    async def run(stop: asyncio.Event) -> None:
        nonlocal status
        status = await run_worker(stop, config, wake_fd)

    _run_until_signal(run)
    sys.exit(status)


@main.group("etcd")
def etcd_group() -> None:
    """The embedded etcd cluster of servers started with --cluster-init / --server."""


def _etcd_admin(data_dir: str, client_port: int) -> Any:
    from kybernetes.apiserver.pki import etcd_pki_paths
    from kybernetes.storage.etcd import EtcdStore
    from kybernetes.storage.etcdmember import url

    paths = etcd_pki_paths(os.path.abspath(data_dir))
    if not os.path.exists(paths.client_cert):
        raise click.ClickException(f"no etcd client certificate in {os.path.dirname(paths.client_cert)}: "
                                   "is --data-dir a server on embedded etcd?")
    return EtcdStore([url("https", "127.0.0.1", client_port)], ca_file=paths.ca_cert, cert_file=paths.client_cert,
                     key_file=paths.client_key)


_etcd_data_dir = click.option("--data-dir", default="/var/lib/kybernetes", show_default=True,
                              help="A server's data dir (its etcd client certificate).")
_etcd_port = click.option("--etcd-client-port", default=2379, show_default=True, type=int,
                          help="That server's --etcd-client-port.")


@etcd_group.command("member-list")
@_etcd_data_dir
@_etcd_port
def etcd_member_list(data_dir: str, etcd_client_port: int) -> None:
    """The members: id, name (empty until started), voter or learner, and peer URLs."""
    from kybernetes.apiserver.serverjoin import list_members

    async def run() -> list[Any]:
        store = _etcd_admin(data_dir, etcd_client_port)
        await store.start()
        try:
            return await list_members(store)
        finally:
            await store.close()

    for m in asyncio.run(run()):
        role = "learner" if m.is_learner else "voter"
        click.echo(f"{m.id:x}\t{m.name or '(not started)'}\t{role}\t{','.join(m.peer_urls)}")


@etcd_group.command("remove-member")
@click.argument("name")
@_etcd_data_dir
@_etcd_port
def etcd_remove_member(name: str, data_dir: str, etcd_client_port: int) -> None:
    """Remove a server's member (by name or hex id) from the cluster, as k3s does when its
    server leaves: run it on any other server once that server is stopped for good."""
    from kybernetes.apiserver.serverjoin import remove_member

    async def run() -> Any:
        store = _etcd_admin(data_dir, etcd_client_port)
        await store.start()
        try:
            return await remove_member(store, name)
        finally:
            await store.close()

    try:
        m = asyncio.run(run())
    except LookupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"removed etcd member {m.name or '(not started)'} ({m.id:x}) at {','.join(m.peer_urls)}")


@main.command("rotate-sa-key")
@click.option("--data-dir", default="/var/lib/kybernetes", show_default=True, help="The server's data dir.")
def rotate_sa_key(data_dir: str) -> None:
    """Start signing ServiceAccount tokens with a new key; tokens of the old keys stay valid
    while their public keys remain in <data-dir>/pki/sa.pub (remove them once those tokens expire)."""
    from kybernetes.apiserver.pki import pki_paths
    from kybernetes.apiserver.serviceaccounts import rotate_signing_key

    kid = rotate_signing_key(pki_paths(os.path.abspath(data_dir)).dir)
    click.echo(f"new service account signing key {kid}; running servers pick it up within a second")


# -- components -------------------------------------------------------------------------------


def _elector(ctx: click.Context, lease: str) -> Callable[[Any], Any]:
    """The component's LeaderElector for `lease` in kube-system, given its client, as its flags
    set it; a usage error now, before anything starts, when they do not fit together."""
    from kybernetes.client import LeaderElector

    times, identity = leader_election_times(ctx), leader_election_identity(ctx)
    return lambda client: LeaderElector(client, "kube-system", lease, identity, lease_duration=times.lease_duration,
                                        renew_deadline=times.renew_deadline, retry_period=times.retry_period)


@main.command("controller-manager")
@click.option("--kubeconfig", required=True, help="How to reach the API server.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@leader_election_flags(identity=True)
@click.option("--node-monitor-grace-period", default=40, show_default=True, type=int)
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True)
@click.option("--workers", default=4, show_default=True, type=int, help="Workers per controller.")
@click.option("--concurrent-syncs", multiple=True, metavar="CONTROLLER=N",
              help="Workers of one controller instead of --workers (repeatable), e.g. namespace=8.")
@click.option("--cluster-signing-cert-file", default="",
              help="CA certificate (PEM) that signs approved kubernetes.io/kube-apiserver-client CSRs.")
@click.option("--cluster-signing-key-file", default="", help="The key of --cluster-signing-cert-file (PEM).")
@click.option("--service-account-private-key-file", default="",
              help="Key (PEM) that signs the tokens of kubernetes.io/service-account-token Secrets.")
@click.pass_context
def controller_manager(ctx: click.Context, kubeconfig: str, leader_elect: bool, node_monitor_grace_period: int,
                       cluster_cidr: str, workers: int, concurrent_syncs: tuple[str, ...],
                       cluster_signing_cert_file: str, cluster_signing_key_file: str,
                       service_account_private_key_file: str = "") -> None:
    """Run the controllers (ReplicaSet, Deployment, garbage collector, namespace, ...)."""
    elector = _elector(ctx, "kube-controller-manager")
    from kybernetes.client import ApiClient
    from kybernetes.controllers.manager import ControllerOptions, check_options, run_controllers

    per_controller: dict[str, int] = {}
    for item in concurrent_syncs:
        name, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"{item!r}: want CONTROLLER=N with N at least 1", param_hint="--concurrent-syncs")
        per_controller[name] = int(n)
    from kybernetes.client.api import kubeconfig_ca_pem

    options = ControllerOptions(node_monitor_grace_period=node_monitor_grace_period, cluster_cidr=cluster_cidr,
                                workers=workers, concurrent_syncs=per_controller,
                                root_ca_pem=kubeconfig_ca_pem(kubeconfig).decode(),
                                cluster_signing_cert_file=cluster_signing_cert_file or None,
                                cluster_signing_key_file=cluster_signing_key_file or None,
                                service_account_private_key_file=service_account_private_key_file or None)
    try:
        check_options(options)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--concurrent-syncs") from None

    async def run(stop: asyncio.Event) -> None:
        client = await ApiClient.from_kubeconfig(kubeconfig, user_agent="kyb-controller-manager",
                                                 max_connections=CONTROLLER_MANAGER_CONNECTIONS)
        client.log_refusals = True

        async def work() -> None:
            await run_controllers(client, options)

        if leader_elect:
            job = asyncio.create_task(elector(client).run(work))
        else:
            job = asyncio.create_task(work())
        await _until(stop, job)
        await client.close()

    _run_until_signal(run)


@main.command()
@click.option("--kubeconfig", required=True, help="How to reach the API server.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@leader_election_flags(identity=True)
@click.pass_context
def scheduler(ctx: click.Context, kubeconfig: str, leader_elect: bool) -> None:
    """Run the scheduler: place pending pods on nodes."""
    elector = _elector(ctx, "kube-scheduler")
    from kybernetes.client import ApiClient, InformerFactory
    from kybernetes.client.resources import NODES, PODS
    from kybernetes.scheduler.cache import scheduling_node_view, scheduling_view
    from kybernetes.scheduler.scheduler import Scheduler

    async def run(stop: asyncio.Event) -> None:
        client = await ApiClient.from_kubeconfig(kubeconfig, user_agent="kyb-scheduler",
                                                 max_connections=SCHEDULER_CONNECTIONS)
        client.log_refusals = True

        async def work() -> None:
            factory = InformerFactory(client, transforms={PODS: scheduling_view,
                                                          NODES: scheduling_node_view})
            sched = Scheduler(client, factory)
            await factory.start()
            await factory.wait_synced()
            await sched.run()

        if leader_elect:
            job = asyncio.create_task(elector(client).run(work))
        else:
            job = asyncio.create_task(work())
        await _until(stop, job)
        await client.close()

    _run_until_signal(run)


@main.command()
@click.option("--kubeconfig", default="", help="How to reach the API server (not needed with --token).")
@click.option("--server", default="", help="The API server to join with --token (https://HOST:PORT).")
@click.option("--token", default="", envvar="KYB_TOKEN",
              help="Bootstrap token to join with (kyb token create); the node then gets its own certificate.")
@click.option("--ca-cert-hash", default="", help="sha256:<hash> pinning the cluster CA when joining with --token.")
@click.option("--ca-cert", default="", help="The cluster CA certificate file, instead of --ca-cert-hash.")
@click.option("--node-name", default=None, help="Name of this node (default: the host name).")
@click.option("--data-dir", default="/var/lib/kybernetes/agent", show_default=True,
              help="Pod logs, volumes and, when the agent starts its own, containerd's state.")
@click.option("--containerd-socket", default="/run/containerd/containerd.sock", show_default=True,
              help="A running containerd to use; if none answers there, the agent starts a private one.")
@click.option("--node-ip", default=None, help="Address to report for this node (default: the primary one).")
@click.option("--cluster-dns", multiple=True, help="DNS server address for pods with dnsPolicy ClusterFirst.")
@click.option("--node-labels", multiple=True, help="key=value label to register the node with.")
@click.option("--register-with-taints", multiple=True, help="key=value:Effect taint to register the node with.")
@click.option("--cni-bridge", default="kyb0", show_default=True, envvar="KYB_CNI_BRIDGE",
              help="Linux bridge of the pod network.")
@click.option("--node-lease-duration-seconds", default=40, show_default=True, type=int,
              help="Duration of the node's heartbeat Lease; renewed every quarter of it.")
@click.option("--port", default=10250, show_default=True, type=int, envvar="KYB_AGENT_PORT",
              help="HTTPS port of the agent's API (logs).")
@click.option("--proxy-table", default="kybernetes", show_default=True, envvar="KYB_PROXY_TABLE",
              help="nftables table (family ip) of the node's service proxy.")
@click.option("--proxy-mode", type=click.Choice(["auto", "nftables", "iptables"]), default="auto",
              show_default=True, help="Packet filter the service proxy programs (auto: nftables if the host has it).")
@click.option("--disable-proxy", is_flag=True, help="Do not run the service proxy on this node.")
@click.option("--dns-port", default=53, show_default=True, type=int, envvar="KYB_DNS_PORT",
              help="Port of the node's cluster DNS server, on the node's address (published as a kube-dns endpoint).")
@click.option("--disable-dns", is_flag=True, help="Do not serve cluster DNS on this node.")
@click.option("--allowed-unsafe-sysctls", multiple=True,
              help="Comma-separated sysctls or prefix* patterns pods may set beyond the safe set (namespaced only).")
@click.option("--flannel-backend", type=click.Choice(["auto", "vxlan", "host-gw", "none"]), default="auto",
              show_default=True, envvar="KYB_FLANNEL_BACKEND",
              help="Pod network across nodes: vxlan overlay, host-gw routes (nodes on one L2 segment), or none. "
                   "auto: vxlan when the API server is on another host, else none.")
def agent(kubeconfig: str, server: str, token: str, ca_cert_hash: str, ca_cert: str, node_name: str | None,
          data_dir: str, containerd_socket: str, node_ip: str | None,
          cluster_dns: tuple[str, ...], node_labels: tuple[str, ...], register_with_taints: tuple[str, ...],
          cni_bridge: str, node_lease_duration_seconds: int, port: int, proxy_table: str,
          proxy_mode: str, disable_proxy: bool, dns_port: int, disable_dns: bool,
          allowed_unsafe_sysctls: tuple[str, ...] = (), flannel_backend: str = "auto") -> None:
    """Run the node agent: register this machine as a node and run its pods on containerd."""
    from kybernetes.agent.agent import Agent, AgentOptions, wait_runtime_ready
    from kybernetes.agent.apiauth import AgentAuth
    from kybernetes.agent.cgroupmode import choose_runtime
    from kybernetes.agent.containerd import ContainerdLayout, PrivateContainerd, import_images, task_dir_of
    from kybernetes.agent.cri.client import CriClient
    from kybernetes.agent.host import read_host_facts
    from kybernetes.agent.images import build_all
    from kybernetes.agent.join import JoinError, join, keep_client_cert
    from kybernetes.agent.server import AgentServer, server_ssl_context
    from kybernetes.agent.servingcert import ensure_serving_cert, keep_serving_cert
    from kybernetes.client import ApiClient
    from kybernetes.client.api import kubeconfig_ca_pem
    from kybernetes.client.apiservers import keep_servers_fresh, load_servers
    from kybernetes.dns.node import cluster_dns_ip, run_node_dns
    from kybernetes.proxy.proxier import Proxier, ProxyOptions

    if not kubeconfig and not token:
        raise click.UsageError("give --kubeconfig, or --server and --token to join")
    if token and not server:
        raise click.UsageError("--token needs --server")
    if token and not ca_cert_hash and not ca_cert:
        # Checked again when joining; said here before anything starts.
        raise click.UsageError("refusing to trust the server's CA unverified: give --ca-cert-hash sha256:<hash> "
                               "(kyb token create --print-join-command prints it) or --ca-cert <file>")
    from kybernetes.agent.admission import validate_allowed_unsafe_sysctls
    unsafe_sysctls = tuple(p.strip() for item in allowed_unsafe_sysctls for p in item.split(",") if p.strip())
    for problem in validate_allowed_unsafe_sysctls(unsafe_sysctls):
        raise click.BadParameter(problem, param_hint="--allowed-unsafe-sysctls")
    labels = dict(item.split("=", 1) for item in node_labels if "=" in item)
    taints = []
    for item in register_with_taints:
        kv, _, effect = item.partition(":")
        key, _, value = kv.partition("=")
        if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise click.BadParameter(f"taint {item!r}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
        taints.append({"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect})

    async def run(stop: asyncio.Event) -> None:
        nonlocal kubeconfig
        os.makedirs(data_dir, exist_ok=True)
        host = read_host_facts(data_dir, node_ip)
        name = node_name or host.hostname
        private = None
        cri = CriClient()
        socket_path = containerd_socket
        try:
            if not os.path.exists(socket_path):
                # Nothing listens there: connecting would only wait out its timeout.
                raise FileNotFoundError(socket_path)
            await cri.connect(socket_path, timeout=2)
            cni_conf_dir = "/etc/cni/net.d"
            # containerd's state dir is its socket's unless configured otherwise; if not,
            # the stats find no init.pid there and ask the runtime.
            task_dir = task_dir_of(os.path.dirname(socket_path))
        except Exception:  # noqa: BLE001 - no runtime there: bring our own
            await cri.close()
            layout = ContainerdLayout(os.path.join(data_dir, "containerd"))
            private = PrivateContainerd(layout, default_runtime=await asyncio.to_thread(choose_runtime))
            cri = CriClient()
            socket_path = layout.socket
            cni_conf_dir = layout.cni_conf_dir
            task_dir = layout.task_dir
        client = None
        api = None
        try:
            if private is not None:
                # Inside the try: whatever fails from here on, the containerd we
                # started is stopped again.
                await private.start()
                await cri.connect(socket_path, timeout=20)
            await wait_runtime_ready(cri)
            # Offline clusters still need the sandbox image (and tests busybox): built
            # from Debian's busybox-static and imported when the runtime lacks them.
            if await cri.image_status("registry.k8s.io/pause:3.10") is None and os.path.exists("/bin/busybox"):
                images_dir = os.path.join(data_dir, "images")
                build_all(images_dir)
                await import_images(socket_path, [os.path.join(images_dir, f) for f in ("pause.tar", "busybox.tar")])
            if token:
                try:
                    kubeconfig = await join(server, token, name, os.path.join(data_dir, "pki"),
                                            ca_cert_hash or None, ca_cert or None)
                except JoinError as e:
                    raise click.ClickException(str(e)) from None
            client = await ApiClient.from_kubeconfig(kubeconfig, user_agent="kyb-agent")
            # The server joined through first, then those last seen in the `kubernetes` Endpoints.
            joined_url = client.base_url
            servers_file = os.path.join(data_dir, "apiservers.json")
            client.set_servers([joined_url, *load_servers(servers_file)])
            # Pods' resolv.conf names the kube-dns Service unless told otherwise.
            dns_servers = cluster_dns or tuple(ip for ip in [await cluster_dns_ip(client)] if ip)
            backend = pod_network_backend(flannel_backend, client.base_url)
            pod_mtu = 1500
            if backend == "vxlan":
                from kybernetes.agent.overlay import VXLAN_OVERHEAD, Netlink
                # In a thread: pyroute2's blocking calls run an event loop of their own.
                pod_mtu = (await asyncio.to_thread(Netlink().lan_device, host.internal_ip))[1] - VXLAN_OVERHEAD
            options = AgentOptions(node_name=name, data_dir=data_dir, cni_conf_dir=cni_conf_dir,
                                   cluster_dns=dns_servers, bridge=cni_bridge, labels=labels, taints=taints,
                                   lease_duration=node_lease_duration_seconds, port=port,
                                   allowed_unsafe_sysctls=unsafe_sysctls, pod_mtu=pod_mtu,
                                   runtime_task_dir=task_dir,
                                   # A containerd not ours: where its crun keeps state is not known.
                                   crun_state_dir=private.layout.crun_dir if private else "",
                                   crun_handlers=private.crun_handlers if private else (),
                                   nohostport_handlers=private.nohostport_handlers if private else {},
                                   cni_nohostport_conf_dir=private.layout.cni_nohostport_conf_dir if private else "")
            # Issued by the cluster CA for this node (the API server verifies it), not self-signed.
            ca_pem = kubeconfig_ca_pem(kubeconfig)
            serving_names = [host.internal_ip, *host.extra_ips, host.hostname]
            node_agent = Agent(client, cri, host, options)
            # Registered first: an approver judges the serving certificate's names by the Node.
            await node_agent.register()
            cert, key = await ensure_serving_cert(client, name, serving_names, os.path.join(data_dir, "pki"), ca_pem)
            agent_tls = server_ssl_context(cert, key, ca_pem)
            api = AgentServer(cri, "0.0.0.0", port, agent_tls, AgentAuth(client, name), pods=node_agent.pods.list,
                              stats_reader=node_agent.stats)
            await api.start()
            jobs = [node_agent.run(),
                    keep_serving_cert(client, name, serving_names, os.path.join(data_dir, "pki"), ca_pem, agent_tls)]
            if token:
                jobs.append(keep_client_cert(client, name, os.path.join(data_dir, "pki")))
            # Every API server the `kubernetes` Endpoints list: the client fails over between
            # them, and the service proxy and DNS, which share it, follow.
            jobs.append(keep_servers_fresh(client, joined_url, state_file=servers_file))
            if not disable_proxy:
                # The service proxy shares the agent's informers and learns the pod CIDR from it.
                proxier = Proxier(client, ProxyOptions(name, table=proxy_table, mode=proxy_mode), node_agent.factory)
                node_agent.pod_cidr_listeners.append(proxier.set_pod_cidr)
                jobs.append(proxier.run())
            if not disable_dns:
                jobs.append(run_node_dns(client, node_agent.factory, name, host.internal_ip, dns_port))
            if backend != "none":
                jobs.append(overlay_network(client, node_agent, backend, host.internal_ip).run())
            job = asyncio.create_task(_first_to_end(*jobs))
            await _until(stop, job)
        finally:
            if api is not None:
                await api.stop()
            if client is not None:
                await client.close()
            await cri.close()
            if private is not None:
                await private.stop()

    _run_until_signal(run)


def pod_network_backend(flag: str, api_server_url: str) -> str:
    """`--flannel-backend auto`: an agent whose API server is on this very host (the server's
    own agent, a second agent beside it, every single-machine test) has no other host to
    reach and keeps the plain bridge; one that talks to a server elsewhere gets the overlay."""
    if flag != "auto":
        return flag
    from urllib.parse import urlparse

    from kybernetes.agent.overlay import is_local_address
    host = urlparse(api_server_url).hostname or ""
    return "none" if not host or is_local_address(host) else "vxlan"


def overlay_network(client: Any, node_agent: Any, backend: str, lan_ip: str) -> Any:
    """The agent's pod network across nodes (agent/overlay.py), fed by its Node informer."""
    from kybernetes.agent.agent import FIELD_MANAGER
    from kybernetes.agent.overlay import OverlayNetwork
    from kybernetes.client.resources import NODES

    async def publish(patch: dict[str, Any]) -> None:
        await client.patch(NODES, None, node_agent.name, patch, patch_type="merge", field_manager=FIELD_MANAGER)

    return OverlayNetwork(backend, node_agent.name, lan_ip, node_agent.factory.informer(NODES), publish,
                          on_cluster_cidrs=node_agent.set_cluster_cidrs)


async def _first_to_end(*coros: Any) -> None:
    """Run side by side; when one ends (or fails), cancel the others and pass it on."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
    finally:
        await cancel_and_wait(tasks)


async def _until(stop: asyncio.Event, job: asyncio.Task[None]) -> None:
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await cancel_and_wait((job, stopper))
    if job in done and not job.cancelled() and job.exception() is not None:
        raise job.exception()  # type: ignore[misc]


main.add_command(sim_nodes_command, "sim-nodes")
main.add_command(token_command, "token")
main.add_command(snapshot_command, "snapshot")
main.add_command(secrets_command, "secrets")


if __name__ == "__main__":
    main()
