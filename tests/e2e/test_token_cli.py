"""`kyb token list|delete` against a real server (issue 17): a deleted token no longer
authenticates (kubectl is refused with it), by id or by whole token; a token that does not
exist is a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import yaml

from kybernetes.testing.cluster import wait_for


def kyb(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "token", *args,
                           "--kubeconfig", server.kubeconfig], capture_output=True, text=True, timeout=60)


def create(server: Any, description: str) -> str:
    r = kyb(server, "create", "--ttl", "1h", "--description", description)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def whoami_with(server: Any, kubectl: Any, tmp_path: Any, token: str) -> Any:
    with open(server.kubeconfig) as f:
        cfg = yaml.safe_load(f)
    cfg["users"] = [{"name": cfg["contexts"][0]["context"]["user"], "user": {"token": token}}]
    path = os.path.join(tmp_path, f"{token[:6]}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", env={"KUBECONFIG": path})


def test_deleted_tokens_stop_authenticating_and_leave_the_list(server, kubectl, tmp_path) -> None:
    by_token, by_id, kept = (create(server, f"cli e2e {n}") for n in ("one", "two", "three"))
    for t in (by_token, by_id, kept):
        r = whoami_with(server, kubectl, tmp_path, t)
        assert r.returncode == 0 and r.stdout == f"system:bootstrap:{t[:6]}", r.stderr
    listed = kyb(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert all(f"{t[:6]}.<secret>" in listed.stdout for t in (by_token, by_id, kept))

    r = kyb(server, "delete", by_token, by_id[:6])
    assert r.returncode == 0, r.stderr
    assert f"bootstrap token '{by_token[:6]}' deleted" in r.stdout

    listed = kyb(server, "list").stdout
    assert by_token[:6] not in listed and by_id[:6] not in listed and f"{kept[:6]}.<secret>" in listed
    for t in (by_token, by_id):
        # The authenticator reads token secrets from its watch cache: gone within moments.
        wait_for(lambda t=t: "Unauthorized" in whoami_with(server, kubectl, tmp_path, t).stderr, timeout=10,
                 what=f"token {t[:6]} to be refused")
    assert whoami_with(server, kubectl, tmp_path, kept).returncode == 0
    kyb(server, "delete", kept)


def test_deleting_a_token_that_does_not_exist_fails_clearly(server) -> None:
    r = kyb(server, "delete", "zzzzzz")
    assert r.returncode == 1 and "not found" in r.stderr.lower()
