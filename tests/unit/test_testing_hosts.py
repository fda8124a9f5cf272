"""What keeps namespace hosts' agents apart (kybernetes/testing/hosts.py): their slots
and names, decided without touching the machine."""

from __future__ import annotations

import pytest

from kybernetes.testing import hosts


def test_agent_slots_give_each_agent_its_own_bridge_table_and_pod_cidr() -> None:
    slots = hosts.AGENT_SLOTS
    assert [s.bridge for s in slots] == [f"kybh{i}" for i in range(1, 7)]
    assert [s.proxy_table for s in slots] == [s.bridge for s in slots]
    assert [s.pod_cidr for s in slots] == [f"10.42.{i}.0/24" for i in range(243, 249)]


def test_slots_run_out_after_six_agents() -> None:
    taken = [hosts._take_slot() for _ in hosts.AGENT_SLOTS]
    try:
        with pytest.raises(RuntimeError, match="at most 6"):
            hosts._take_slot()
    finally:
        for s in taken:
            hosts._slots_in_use.discard(s.index)


@pytest.mark.parametrize("name", ["", "Upper", "toolong7", "a-b"])
def test_host_names_fit_interface_and_namespace_names(name: str) -> None:
    with pytest.raises(ValueError, match="host name"):
        hosts.Lan("kyblan9").host(name)


def test_a_lan_name_leaves_room_for_its_veths() -> None:
    with pytest.raises(ValueError, match="at most 8"):
        hosts.Lan("kyblan-long")


def test_a_cluster_puts_every_server_on_one_port_and_starts_agents_side_by_side(monkeypatch) -> None:
    """The `kubernetes` Endpoints carry one port for all addresses: servers on other ports
    could not be failed over to. Agents wait for their containerd in parallel."""
    calls: list[tuple[str, ...]] = []

    class FakeAgent:
        def __init__(self, name: str) -> None:
            self.name = name

        def start(self, wait: bool = True) -> None:
            calls.append(("start", self.name, str(wait)))

        def wait_ready(self, timeout: float) -> None:
            calls.append(("ready", self.name))

    class FakeServer:
        def __init__(self, port: int | None) -> None:
            self.port = port or 6443
            self.url = f"https://h:{self.port}"

    class FakeHost:
        def __init__(self, name: str) -> None:
            self.name = name

        def server(self, extra_args=(), port=None):  # noqa: ANN001, ANN202
            calls.append(("server", self.name, str(port)))
            return FakeServer(port)

        def agent(self, srv, token=None, ca_cert_hash=None, extra_args=(), start=True):  # noqa: ANN001, ANN202
            assert not start
            return FakeAgent(self.name)

    class FakeLan:
        def __init__(self, *a: object, **kw: object) -> None:
            pass

        def __enter__(self) -> FakeLan:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def host(self, name: str) -> FakeHost:
            return FakeHost(name)

    monkeypatch.setattr(hosts, "Lan", FakeLan)
    monkeypatch.setattr(hosts, "server_token", lambda srv: "K10x::server:y")
    monkeypatch.setattr(hosts, "join_token", lambda srv: ("abcdef.0123456789abcdef", "sha256:00"))
    with hosts.cluster(agents=2, servers=3):
        pass
    assert calls == [("server", "srv1", "None"), ("server", "srv2", "6443"), ("server", "srv3", "6443"),
                     ("start", "ag1", "False"), ("start", "ag2", "False"), ("ready", "ag1"), ("ready", "ag2")]
