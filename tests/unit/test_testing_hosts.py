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
