"""Two `kyb server`s on one etcd (issue 17): the `kubernetes` Endpoints list both, and a client
that knows both carries on when the one it uses is killed with -9, and so does a real agent
that joined through it (its node lease is still renewed, through the other).

Each server binds and advertises its own loopback address (127.0.0.2, 127.0.0.3), as
two machines would (on the same port), so the Endpoints carry two addresses. The
second server gets the cluster's CA and keys with the first's server token (from the
bootstrap data in the store; a server without that feature gets a copy of the first's
pki directory instead); its serving certificate is made for its own address.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import time
import uuid

import pytest

from kybernetes.client import apiservers
from kybernetes.client.api import ApiClient, kubeconfig_entries, ssl_context_from_kubeconfig
from kybernetes.client.resources import CONFIGMAPS, NAMESPACES
from kybernetes.testing.agent import AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import ServerProcess, wait_for
from kybernetes.testing.etcd import EtcdProcess, etcd_binary

pytestmark = pytest.mark.skipif(etcd_binary() is None, reason="no etcd binary (Debian package etcd-server)")

NS = "failover-e2e"
NODE = "kyb-lb-node"


class LoopbackServer(ServerProcess):
    """A server bound to and advertising one loopback address of its own."""

    def __init__(self, ip: str, etcd_url: str, data_dir: str | None = None, port: int | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir=data_dir, port=port, extra_args=[
            "--bind-address", ip, "--advertise-address", ip, "--datastore-endpoint", etcd_url,
            "--disable-scheduler", *extra_args])
        self.ip = ip

    @property
    def url(self) -> str:
        return f"https://{self.ip}:{self.port}"


@pytest.fixture(scope="module")
def pair():
    etcd = EtcdProcess()
    first = second = None
    second_dir = tempfile.mkdtemp(prefix="kyb-test-")
    try:
        etcd.start()
        first = LoopbackServer("127.0.0.2", etcd.url)
        first.start(timeout=60)
        token_file = os.path.join(first.data_dir, "token")
        if os.path.exists(token_file):
            # The cluster's server token opens the CA and keys the first server keeps in the store.
            with open(token_file) as f:
                shared: tuple[str, ...] = ("--token", f.read().strip())
        else:
            shared = ()
            shutil.copytree(os.path.join(first.data_dir, "pki"), os.path.join(second_dir, "pki"))
        # The same port on another address, as on another machine: the EndpointSlice, which
        # has one port list, carries both.
        second = LoopbackServer("127.0.0.3", etcd.url, data_dir=second_dir, port=first.port, extra_args=shared)
        second.start(timeout=60)
        yield first, second
    finally:
        for s in (second, first):
            if s is not None:
                s.cleanup()
        shutil.rmtree(second_dir, ignore_errors=True)
        etcd.stop()


def addresses(srv: ServerProcess) -> set[str]:
    r = srv.kubectl("get", "endpoints", "kubernetes", "-o", "json")
    assert r.ok, r.stderr
    subsets = json.loads(r.stdout).get("subsets") or []
    return {a["ip"] for s in subsets for a in s.get("addresses") or []}


def client_for(kubeconfig: str, urls: list[str]) -> ApiClient:
    cluster, user = kubeconfig_entries(kubeconfig)
    ctx: ssl.SSLContext = ssl_context_from_kubeconfig(cluster, user, os.path.dirname(kubeconfig))
    return ApiClient(urls, ctx, user_agent="failover-e2e")


def test_the_kubernetes_endpoints_list_both_servers(pair) -> None:
    first, second = pair
    wait_for(lambda: addresses(first) == {"127.0.0.2", "127.0.0.3"}, timeout=30,
             what="both servers in the kubernetes Endpoints")
    assert addresses(second) == {"127.0.0.2", "127.0.0.3"}, "both servers show the same list"
    r = second.kubectl("get", "endpointslice", "kubernetes", "-o", "json")
    assert r.ok, r.stderr
    assert sorted(a for e in json.loads(r.stdout)["endpoints"] for a in e["addresses"]) == ["127.0.0.2", "127.0.0.3"]


async def test_a_client_that_knows_both_carries_on_after_kill_9_of_the_one_it_uses(pair) -> None:
    first, second = pair
    client = client_for(first.kubeconfig, [first.url])
    try:
        # It joined through the first and learns the second from the Endpoints.
        known = await apiservers.refresh_servers(client, first.url)
        assert set(known) == {first.url, second.url}
        assert client.base_url == first.url
        await client.create(NAMESPACES, None, {"metadata": {"name": NS}})
        names = [f"before-{uuid.uuid4().hex[:6]}", f"after-{uuid.uuid4().hex[:6]}"]
        await client.create(CONFIGMAPS, NS, {"metadata": {"name": names[0]}, "data": {"v": "1"}})
        first.kill9()
        # A read right away, on a pooled connection the dead server held: sent again to the
        # other server. (A write on it would fail, as client-go's does: it may have arrived.)
        got = await client.get(CONFIGMAPS, NS, names[0])
        assert got["data"] == {"v": "1"}
        assert client.base_url == second.url
        await client.create(CONFIGMAPS, NS, {"metadata": {"name": names[1]}, "data": {"v": "2"}})
        listed = await client.list(CONFIGMAPS, NS)
        assert {i["metadata"]["name"] for i in listed["items"]} >= set(names)
    finally:
        await client.close()
    # The surviving server has everything written through either.
    r = second.kubectl("-n", NS, "get", "configmaps", "-o", "name")
    assert r.ok and all(f"configmap/{n}" in r.stdout for n in names), r.stderr


def lease_renewed(srv: ServerProcess) -> str:
    r = srv.kubectl("get", "lease", "-n", "kube-node-lease", NODE, "-o", "jsonpath={.spec.renewTime}")
    return r.stdout.strip() if r.ok else ""


@pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")
def test_an_agent_learns_both_servers_and_carries_on_after_kill_9_of_the_one_it_joined(pair) -> None:
    first, second = pair
    if first.proc is None or first.proc.poll() is not None:
        first.start(timeout=60)  # killed by the test before: back on its data, as a rejoining server
    agent = AgentProcess(first, node_name=NODE, bridge="kybl1", proxy_table="kybl1", pod_cidr="10.42.253.0/24")
    try:
        agent.start(timeout=120)
        saved = os.path.join(agent.data_dir, "apiservers.json")
        wait_for(lambda: set(apiservers.load_servers(saved)) >= {first.url, second.url}, timeout=30,
                 what="the agent to learn both API servers")
        first.kill9()
        killed_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        # The lease is renewed every second (duration 4 s): a renewal after the kill went
        # through the other server.
        wait_for(lambda: lease_renewed(second)[:19] > killed_at, timeout=20,
                 what="the node lease to be renewed after the kill")
        assert agent.proc is not None and agent.proc.poll() is None, agent.log_tail()
        assert "unreachable, switching to" in agent.log_tail(200000)
    finally:
        agent.server = second
        agent.cleanup()
