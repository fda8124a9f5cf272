"""The pod network across nodes: what the agent plans from Node objects (no root needed),
and the loop that keeps a (fake) kernel in step with them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from kybernetes.agent import egress, overlay
from kybernetes.agent.overlay import FdbEntry, Neighbour, NetDiff, NetState, Route

MAC_B = "aa:bb:cc:00:00:0b"
MAC_C = "aa:bb:cc:00:00:0c"


def node(name: str, cidr: str = "", ip: str = "", mac: str = "", internal_ip: str = "") -> dict:
    annotations = {}
    if ip:
        annotations[overlay.ANNOTATION_PUBLIC_IP] = ip
    if mac:
        annotations[overlay.ANNOTATION_VTEP_MAC] = mac
    obj: dict = {"metadata": {"name": name, "annotations": annotations}, "spec": {}}
    if cidr:
        obj["spec"]["podCIDR"] = cidr
    if internal_ip:
        obj["status"] = {"addresses": [{"type": "Hostname", "address": name},
                                       {"type": "InternalIP", "address": internal_ip}]}
    return obj


CLUSTER = [node("a", "10.42.1.0/24", "192.168.5.1", "aa:bb:cc:00:00:0a"),
           node("b", "10.42.2.0/24", "192.168.5.2", MAC_B),
           node("c", "10.42.3.0/24", "192.168.5.3", MAC_C)]


def test_vxlan_every_other_node_gets_a_route_a_neighbour_and_an_fdb_entry():
    state = overlay.desired("vxlan", "a", CLUSTER)
    assert state.routes == {Route("10.42.2.0/24", "10.42.2.0", vxlan=True),
                            Route("10.42.3.0/24", "10.42.3.0", vxlan=True)}
    assert state.neighbours == {Neighbour("10.42.2.0", MAC_B), Neighbour("10.42.3.0", MAC_C)}
    assert state.fdb == {FdbEntry(MAC_B, "192.168.5.2"), FdbEntry(MAC_C, "192.168.5.3")}


def test_host_gw_routes_each_pod_cidr_via_the_nodes_lan_address():
    state = overlay.desired("host-gw", "b", CLUSTER)
    assert state.routes == {Route("10.42.1.0/24", "192.168.5.1"), Route("10.42.3.0/24", "192.168.5.3")}
    assert not state.neighbours and not state.fdb


def test_nodes_not_ready_for_the_overlay_are_left_out_until_they_are():
    nodes = [*CLUSTER[:1],
             node("no-cidr", "", "192.168.5.9", MAC_B),
             node("no-mac-yet", "10.42.4.0/24", "192.168.5.4"),
             node("bad-mac", "10.42.5.0/24", "192.168.5.5", "not-a-mac"),
             node("no-address", "10.42.6.0/24", "", MAC_C),
             node("overlaps-ours", "10.42.1.0/25", "192.168.5.7", MAC_C),
             node("ipv6", "fd00::/64", "192.168.5.8", MAC_C)]
    assert overlay.desired("vxlan", "a", nodes) == NetState()
    # host-gw needs no MAC: only the node with one address and a CIDR of its own is routed.
    assert overlay.desired("host-gw", "a", nodes).routes == {Route("10.42.4.0/24", "192.168.5.4"),
                                                              Route("10.42.5.0/24", "192.168.5.5")}


def test_a_node_without_the_annotation_is_reached_at_its_internal_ip():
    nodes = [node("a", "10.42.1.0/24"), node("b", "10.42.2.0/24", internal_ip="192.168.5.2")]
    assert overlay.desired("host-gw", "a", nodes).routes == {Route("10.42.2.0/24", "192.168.5.2")}


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError):
        overlay.desired("wireguard", "a", CLUSTER)


def test_diff_adds_what_is_missing_and_removes_what_a_gone_node_left():
    have = overlay.desired("vxlan", "a", CLUSTER)
    want = overlay.desired("vxlan", "a", CLUSTER[:2])  # c is gone
    changes = overlay.diff(want, have)
    assert changes == NetDiff(del_routes=(Route("10.42.3.0/24", "10.42.3.0", vxlan=True),),
                              del_neighbours=(Neighbour("10.42.3.0", MAC_C),),
                              del_fdb=(FdbEntry(MAC_C, "192.168.5.3"),))
    assert overlay.diff(want, want).empty()
    assert overlay.diff(have, NetState()).add_routes == tuple(sorted(have.routes))


def test_a_node_that_moved_is_replaced_in_place_not_deleted():
    moved = [CLUSTER[0], node("b", "10.42.2.0/24", "192.168.5.20", "aa:bb:cc:00:00:bb")]
    changes = overlay.diff(overlay.desired("vxlan", "a", moved), overlay.desired("vxlan", "a", CLUSTER[:2]))
    # The route and neighbour are replaced (a deletion after the replace would remove the new one) ...
    assert changes.del_routes == () and changes.del_neighbours == ()
    assert changes.add_neighbours == (Neighbour("10.42.2.0", "aa:bb:cc:00:00:bb"),)
    # ... while FDB entries are keyed by MAC and destination: the old one goes.
    assert changes.del_fdb == (FdbEntry(MAC_B, "192.168.5.2"),)
    assert changes.add_fdb == (FdbEntry("aa:bb:cc:00:00:bb", "192.168.5.20"),)


def test_vtep_address_is_the_network_address_of_the_pod_cidr():
    assert overlay.vtep_ip("10.42.7.0/24") == "10.42.7.0"
    assert overlay.vtep_ip("10.42.7.9/24") == "10.42.7.0"


def test_cluster_cidrs_and_the_egress_rule_keep_pod_to_pod_traffic_unmasqueraded():
    cidrs = overlay.cluster_cidrs([*CLUSTER, node("x")])
    assert cidrs == ["10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]
    script = egress.masquerade_script("t", "10.42.1.0/24", cidrs)
    assert "ip saddr 10.42.1.0/24 ip daddr != { 10.42.1.0/24, 10.42.2.0/24, 10.42.3.0/24 } " in script
    # A wider range given covers the narrower ones (nft refuses overlapping set elements).
    assert "ip daddr != 10.42.0.0/16 " in egress.masquerade_script("t", "10.42.1.0/24", ["10.42.0.0/16"])
    # Without other nodes the rule is what it was.
    assert "ip daddr != 10.42.1.0/24 " in egress.masquerade_script("t", "10.42.1.0/24", [])


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_nft_accepts_the_rule_with_other_nodes_cidrs():
    script = egress.masquerade_script("kyb-egress-check", "10.42.1.0/24", ["10.42.2.0/24", "10.42.3.0/24"])
    check = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_own_annotations_and_the_patch_that_publishes_them():
    wanted = overlay.own_annotations("vxlan", "192.168.5.1", "aa:bb:cc:00:00:0a")
    assert wanted == {overlay.ANNOTATION_BACKEND: "vxlan", overlay.ANNOTATION_PUBLIC_IP: "192.168.5.1",
                      overlay.ANNOTATION_VTEP_MAC: "aa:bb:cc:00:00:0a"}
    assert overlay.ANNOTATION_VTEP_MAC not in overlay.own_annotations("host-gw", "192.168.5.1", "")
    assert overlay.annotations_patch(node("a"), wanted) == {"metadata": {"annotations": wanted}}
    published = {"metadata": {"name": "a", "annotations": {**wanted, "other": "x"}}}
    assert overlay.annotations_patch(published, wanted) is None


def test_loopback_and_this_hosts_addresses_are_local_others_are_not():
    assert overlay.is_local_address("127.0.0.1")
    assert overlay.is_local_address("localhost")
    assert not overlay.is_local_address("192.0.2.77")  # TEST-NET-1: nobody's
    assert not overlay.is_local_address("no-such-host.invalid")


def test_auto_backend_is_off_beside_the_server_and_vxlan_towards_another_host():
    from kybernetes.cli.main import pod_network_backend
    assert pod_network_backend("auto", "https://127.0.0.1:6443") == "none"
    assert pod_network_backend("auto", "https://192.0.2.77:6443") == "vxlan"
    assert pod_network_backend("host-gw", "https://127.0.0.1:6443") == "host-gw"


class FakeNodes:
    def __init__(self, nodes: list[dict]) -> None:
        self.nodes = nodes
        self.handlers: list = []

    def list(self) -> list[dict]:
        return list(self.nodes)

    def add_handler(self, on_add, on_update, on_delete) -> None:  # noqa: ANN001
        self.handlers.append((on_add, on_update, on_delete))


class FakeKernel(overlay.Netlink):
    def __init__(self) -> None:
        super().__init__()
        self.state = NetState()
        self.vteps: list[tuple[str, str]] = []

    def ensure_vtep(self, lan_ip: str, pod_cidr: str) -> tuple[str, int]:
        self.vteps.append((lan_ip, pod_cidr))
        return "aa:bb:cc:00:00:0a", 1450

    def observed(self) -> NetState:
        return self.state

    def apply(self, changes: NetDiff) -> None:
        self.state = NetState(
            (self.state.routes - set(changes.del_routes)
             - {r for r in self.state.routes if any(a.dst == r.dst for a in changes.add_routes)})
            | set(changes.add_routes),
            (self.state.neighbours - set(changes.del_neighbours)) | set(changes.add_neighbours),
            (self.state.fdb - set(changes.del_fdb)) | set(changes.add_fdb))


async def test_the_loop_publishes_our_vtep_follows_nodes_and_tells_egress():
    nodes = FakeNodes([node("a", "10.42.1.0/24"), *CLUSTER[1:]])
    patches: list[dict] = []
    told: list[list[str]] = []
    kernel = FakeKernel()

    async def publish(patch: dict) -> None:
        patches.append(patch)
        nodes.nodes[0]["metadata"]["annotations"].update(patch["metadata"]["annotations"])

    async def tell(cidrs: list[str]) -> None:
        told.append(cidrs)

    net = overlay.OverlayNetwork("vxlan", "a", "192.168.5.1", nodes, publish, netlink=kernel, on_cluster_cidrs=tell)
    assert len(nodes.handlers) == 1
    await net.sync()
    assert kernel.vteps == [("192.168.5.1", "10.42.1.0/24")]
    assert patches == [{"metadata": {"annotations": overlay.own_annotations("vxlan", "192.168.5.1",
                                                                            "aa:bb:cc:00:00:0a")}}]
    assert kernel.state == overlay.desired("vxlan", "a", CLUSTER)
    assert told == [["10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]]
    # Node c goes: its entries go, egress hears of it; nothing is published again.
    del nodes.nodes[2]
    await net.sync()
    assert kernel.state == overlay.desired("vxlan", "a", CLUSTER[:2])
    assert Route("10.42.3.0/24", "10.42.3.0", vxlan=True) not in kernel.state.routes
    assert told[-1] == ["10.42.1.0/24", "10.42.2.0/24"] and len(patches) == 1
    # The device is checked at every sync (someone may have removed it), always the same one.
    assert set(kernel.vteps) == {("192.168.5.1", "10.42.1.0/24")}


def test_only_what_the_plan_reads_wakes_the_loop_not_a_heartbeat():
    nodes = FakeNodes(list(CLUSTER))

    async def publish(_patch: dict) -> None:
        return None

    net = overlay.OverlayNetwork("vxlan", "a", "192.168.5.1", nodes, publish, netlink=FakeKernel())
    _add, on_update, _delete = nodes.handlers[0]
    old = CLUSTER[1]
    heartbeat = {**old, "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "now"}]}}
    on_update(old, heartbeat)
    assert not net._dirty.is_set()
    moved = {**old, "metadata": {**old["metadata"], "annotations": {**old["metadata"]["annotations"],
                                                                    overlay.ANNOTATION_VTEP_MAC: MAC_C}}}
    on_update(old, moved)
    assert net._dirty.is_set()


async def test_the_loop_retries_a_failed_sync():
    nodes = FakeNodes(list(CLUSTER))
    failures = [RuntimeError("netlink said no")]

    class Flaky(FakeKernel):
        def apply(self, changes: NetDiff) -> None:
            if failures:
                raise failures.pop()
            super().apply(changes)

    kernel = Flaky()

    async def publish(_patch: dict) -> None:
        return None

    net = overlay.OverlayNetwork("host-gw", "a", "192.168.5.1", nodes, publish, netlink=kernel)
    task = asyncio.create_task(net.run())
    try:
        for _ in range(100):
            if kernel.state.routes:
                break
            net.changed()
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert kernel.state == overlay.desired("host-gw", "a", CLUSTER)
