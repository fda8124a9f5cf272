"""scripts/cni-cleanup.py (run by scripts/down.sh): only the stopped cluster's
containers' CNI rules and chains are picked, never another cluster's or shared chains."""

from __future__ import annotations

import importlib.util
import pathlib

_PATH = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "cni-cleanup.py"
_SPEC = importlib.util.spec_from_file_location("cni_cleanup", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
cni_cleanup = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cni_cleanup)

MINE, OTHER = "a" * 64, "b" * 64
SAVED = f"""*nat
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-0123456789abcdef01234567 - [0:0]
:CNI-fedcba9876543210fedcba98 - [0:0]
-A POSTROUTING -s 10.60.0.5/32 -m comment --comment "name: \\"kybernetes\\" id: \\"{MINE}\\"" -j CNI-0123456789abcdef01234567
-A POSTROUTING -s 10.42.0.5/32 -m comment --comment "name: \\"kybernetes\\" id: \\"{OTHER}\\"" -j CNI-fedcba9876543210fedcba98
-A CNI-0123456789abcdef01234567 -d 10.60.0.0/24 -m comment --comment "name: \\"kybernetes\\" id: \\"{MINE}\\"" -j ACCEPT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kybernetes\\" id: \\"{MINE}\\"" -m multiport --dports 80 -j CNI-DN-0123456789abcdef01234567
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kybernetes\\" id: \\"{OTHER}\\"" -m multiport --dports 81 -j CNI-DN-fedcba9876543210fedcba98
COMMIT
"""


def test_only_the_named_containers_rules_and_own_chains_are_picked() -> None:
    rules, chains = cni_cleanup.rules_to_delete(SAVED, {MINE})
    assert [r[1] for r in rules] == ["POSTROUTING", "CNI-0123456789abcdef01234567", "CNI-HOSTPORT-DNAT"]
    assert all(MINE in " ".join(r) and OTHER not in " ".join(r) for r in rules)
    assert chains == ["CNI-0123456789abcdef01234567", "CNI-DN-0123456789abcdef01234567"]
    assert cni_cleanup.rules_to_delete(SAVED, set()) == ([], [])
