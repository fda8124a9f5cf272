#!/usr/bin/env python3
"""Removes the iptables rules the CNI plugins (bridge ipMasq, portmap) left for the
given containers, and the per-container chains those rules jump to; other clusters'
rules on the same host stay. Usage: cni-cleanup.py CONTAINER_ID...

The plugins tag each rule with a comment naming the container (`id: "<id>"`). Rules
are deleted one by one (`iptables -D`), never by restoring a saved table, so rules
another agent adds meanwhile are not lost."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

# Chains the plugins make for one container (CNI-<hash>, CNI-DN-<hash>); shared ones
# (CNI-HOSTPORT-*, CNI-FORWARD, ...) are left in place.
OWN_CHAIN = re.compile(r"^CNI-(DN-)?[0-9a-f]{24}$")


def rules_to_delete(saved: str, ids: set[str]) -> tuple[list[list[str]], list[str]]:
    """From `iptables-save` output: the rules (as `-A CHAIN ...` argument lists) that
    name one of `ids`, and the container chains they jump to."""
    rules: list[list[str]] = []
    chains: list[str] = []
    for line in saved.splitlines():
        if not line.startswith("-A "):
            continue
        args = shlex.split(line)
        comment = args[args.index("--comment") + 1] if "--comment" in args else ""
        found = re.search(r'id: "([0-9a-f]+)"', comment)
        if found is None or found.group(1) not in ids:
            continue
        rules.append(args)
        if "-j" in args and OWN_CHAIN.match(args[args.index("-j") + 1]):
            chains.append(args[args.index("-j") + 1])
    return rules, chains


def main(ids: list[str]) -> int:
    # host-local's lease files hold "<id>\r\n<interface>": ids may come with a carriage return.
    wanted = {i.strip() for i in ids if i.strip()}
    if not wanted:
        return 0
    for table in ("nat", "filter"):
        saved = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        rules, chains = rules_to_delete(saved, wanted)
        for args in rules:
            subprocess.run(["iptables", "-t", table, "-D", *args[1:]], capture_output=True)
        for chain in dict.fromkeys(chains):
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
