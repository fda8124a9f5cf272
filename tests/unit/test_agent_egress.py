"""The node's one masquerade rule for its pods' traffic leaving the pod network."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kybernetes.agent import egress
from kybernetes.agent.node import cni_conflist


def test_the_rule_masquerades_only_what_leaves_the_pod_cidr():
    script = egress.masquerade_script("kyb-egress-kyb9", "10.42.7.0/24")
    assert "ip saddr 10.42.7.0/24 ip daddr != 10.42.7.0/24 ip daddr != 224.0.0.0/4 masquerade" in script
    assert "type nat hook postrouting" in script
    # Replacing the table is one transaction: an agent restart never leaves two rules or none.
    assert script.index("delete table ip kyb-egress-kyb9") < script.rindex("table ip kyb-egress-kyb9 {")


def test_a_host_address_in_the_cidr_is_normalised_and_ipv6_refused():
    assert "ip saddr 10.42.7.0/24 " in egress.masquerade_script("t", "10.42.7.9/24")
    with pytest.raises(ValueError):
        egress.masquerade_script("t", "fd00::/64")


def test_tables_are_named_after_the_bridge():
    assert egress.table_name("kyb0") != egress.table_name("kybt0")


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_nft_accepts_the_script():
    check = subprocess.run(["nft", "-c", "-f", "-"], input=egress.masquerade_script("kyb-egress-check", "10.42.7.0/24"),
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_bridge_plugin_masquerades_per_pod_only_as_a_fallback():
    assert cni_conflist("10.42.3.0/24", "/x", ip_masq=False)["plugins"][0]["ipMasq"] is False
    assert cni_conflist("10.42.3.0/24", "/x")["plugins"][0]["ipMasq"] is True
