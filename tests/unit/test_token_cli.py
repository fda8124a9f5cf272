"""`kyb token list|delete`: what the list shows of each bootstrap token (never its secret), and
which arguments delete refuses before asking the server anything."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from kybernetes.api import bootstraptoken as bt
from kybernetes.cli import token as cli

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def secret(token: str, ttl: dt.timedelta | None, description: str = "") -> dict:
    return bt.token_secret(token, NOW, ttl, description)


def test_the_list_shows_id_ttl_expiry_usages_and_groups_but_not_the_secret() -> None:
    rows = cli._rows([
        secret("abcdef.0123456789abcdef", dt.timedelta(minutes=30), "for node 1"),
        secret("ghijkl.0123456789abcdef", dt.timedelta(hours=23, minutes=59)),
        secret("mnopqr.0123456789abcdef", dt.timedelta(days=3)),
        secret("stuvwx.0123456789abcdef", None),
        {"kind": "Secret", "type": "Opaque", "metadata": {"name": "other", "namespace": "kube-system"}},
    ], NOW + dt.timedelta(seconds=1))
    assert [r[:2] for r in rows] == [["abcdef.<secret>", "29m"], ["ghijkl.<secret>", "23h"],
                                     ["mnopqr.<secret>", "2d"], ["stuvwx.<secret>", "<forever>"]]
    assert rows[0][2] == "2026-12-06T12:30:00Z" and rows[3][2] == "<never>"
    assert rows[0][3] == "authentication,signing" and rows[0][4] == "for node 1" and rows[1][4] == "<none>"
    assert rows[0][5] == bt.DEFAULT_EXTRA_GROUP
    assert not any("0123456789abcdef" in cell for r in rows for cell in r)


def test_an_expired_token_is_listed_as_expired() -> None:
    rows = cli._rows([secret("abcdef.0123456789abcdef", dt.timedelta(seconds=5))], NOW + dt.timedelta(minutes=1))
    assert rows[0][1] == "<expired>"


@pytest.mark.parametrize(("seconds", "want"), [(-3, "0s"), (45, "45s"), (3599, "59m"), (7200, "2h"),
                                               (86400 * 6, "6d"), (86400 * 800, "2y")])
def test_short_durations(seconds: float, want: str) -> None:
    assert cli.short_duration(seconds) == want


@pytest.mark.parametrize("arg", ["ABCDEF", "abc", "abcdef.short", "abcdefg"])
def test_delete_refuses_what_is_not_a_token_or_token_id(tmp_path, arg: str) -> None:
    # No kubeconfig exists: a refusal here cannot have come from a server.
    r = CliRunner().invoke(cli.token_command, ["delete", "--kubeconfig", str(tmp_path / "none.yaml"), arg])
    assert r.exit_code != 0 and "neither a token id" in r.output


def test_delete_needs_a_token() -> None:
    r = CliRunner().invoke(cli.token_command, ["delete", "--kubeconfig", "/nonexistent"])
    assert r.exit_code == 2 and "Missing argument" in r.output


def test_list_without_a_readable_kubeconfig_says_so(tmp_path) -> None:
    r = CliRunner().invoke(cli.token_command, ["list", "--kubeconfig", str(tmp_path / "none.yaml")])
    assert r.exit_code == 1 and "cannot read the kubeconfig" in r.output
