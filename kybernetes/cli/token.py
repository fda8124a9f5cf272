"""`kyb token create|list|delete`: bootstrap tokens for joining nodes, as `kubeadm token`."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import click

from kybernetes.api import bootstraptoken as bt

DEFAULT_KUBECONFIG = "/var/lib/kybernetes/kubeconfig.yaml"


def _kubeconfig_option(fn: Any) -> Any:
    return click.option("--kubeconfig", envvar="KUBECONFIG", default=DEFAULT_KUBECONFIG, show_default=True,
                        help="An administrator's kubeconfig.")(fn)


async def _with_client(kubeconfig: str, work: Any) -> Any:
    from kybernetes.client import ApiClient

    try:
        client = await ApiClient.from_kubeconfig(kubeconfig, user_agent="kyb-token")
    except OSError as e:
        raise click.ClickException(f"cannot read the kubeconfig {kubeconfig}: {e.strerror or e}") from None
    try:
        return await work(client)
    finally:
        await client.close()


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e)) from None


@click.group("token")
def token_command() -> None:
    """Bootstrap tokens: a new node joins with `kyb agent --server URL --token TOKEN --ca-cert-hash HASH`."""


@token_command.command("create")
@_kubeconfig_option
@click.argument("token", required=False)
@click.option("--ttl", default="24h", show_default=True, help="How long the token is valid (e.g. 2h30m; 0: forever).")
@click.option("--description", default="", help="What the token is for.")
@click.option("--groups", default=bt.DEFAULT_EXTRA_GROUP, show_default=True,
              help="Extra groups (comma-separated, each system:bootstrappers:...).")
@click.option("--print-join-command", is_flag=True, help="Print the whole `kyb agent` command that joins a node.")
def create(kubeconfig: str, token: str | None, ttl: str, description: str, groups: str,
           print_join_command: bool) -> None:
    """Create a bootstrap token (a new random one unless TOKEN is given) and print it."""
    from kybernetes.client import ApiError
    from kybernetes.client.api import kubeconfig_ca_pem, kubeconfig_entries
    from kybernetes.client.resources import SECRETS

    try:
        lifetime = bt.parse_duration(ttl)
        token = token or bt.generate_token()
        secret = bt.token_secret(token, dt.datetime.now(dt.UTC), lifetime, description,
                                 tuple(g.strip() for g in groups.split(",") if g.strip()))
    except ValueError as e:
        _fail(e)

    async def work(client: Any) -> None:
        await client.create(SECRETS, bt.NAMESPACE, secret)

    try:
        asyncio.run(_with_client(kubeconfig, work))
    except ApiError as e:
        _fail(e)
    if not print_join_command:
        click.echo(token)
        return
    cluster, _ = kubeconfig_entries(kubeconfig)
    pin = bt.ca_cert_hash(kubeconfig_ca_pem(kubeconfig))
    click.echo(f"kyb agent --server {cluster['server']} --token {token} --ca-cert-hash {pin}")


def short_duration(seconds: float) -> str:
    """Kubernetes' short human duration (as kubeadm's TTL column): 45s, 59m, 23h, 6d, 2y."""
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 86400 * 365:
        return f"{s // 86400}d"
    return f"{s // (86400 * 365)}y"


def _rows(secrets: list[dict[str, Any]], now: dt.datetime) -> list[list[str]]:
    rows = []
    for s in secrets:
        if not bt.is_token_secret(s):
            continue
        token_id = bt.secret_data(s, bt.TOKEN_ID) or ""
        exp = bt.expiration(s)
        ttl = "<forever>" if exp is None else ("<expired>" if exp <= now else
                                                short_duration((exp - now).total_seconds()))
        usages = ",".join(k.removeprefix("usage-bootstrap-") for k in (bt.USAGE_AUTHENTICATION, bt.USAGE_SIGNING)
                          if bt.secret_data(s, k) == "true")
        rows.append([f"{token_id}.<secret>", ttl, bt.secret_data(s, bt.EXPIRATION) or "<never>", usages,
                     bt.secret_data(s, bt.DESCRIPTION) or "<none>", bt.secret_data(s, bt.EXTRA_GROUPS) or "<none>"])
    return rows


@token_command.command("list")
@_kubeconfig_option
def list_tokens(kubeconfig: str) -> None:
    """List the bootstrap tokens (their secrets are not shown)."""
    from kybernetes.client import ApiError
    from kybernetes.client.resources import SECRETS

    async def work(client: Any) -> list[dict[str, Any]]:
        found = await client.list(SECRETS, bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}")
        return list(found.get("items") or [])

    try:
        secrets = asyncio.run(_with_client(kubeconfig, work))
    except ApiError as e:
        _fail(e)
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"],
            *_rows(secrets, dt.datetime.now(dt.UTC))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@token_command.command("delete")
@_kubeconfig_option
@click.argument("tokens", nargs=-1, required=True)
def delete(kubeconfig: str, tokens: tuple[str, ...]) -> None:
    """Delete bootstrap tokens, given as TOKEN-ID or the whole TOKEN: they stop working at once."""
    from kybernetes.client import ApiError
    from kybernetes.client.resources import SECRETS

    ids = []
    for t in tokens:
        # A malformed whole token is refused rather than cut down to a (maybe other) token's id.
        if not (bt.valid_id(t) or bt.looks_like_token(t)):
            _fail(ValueError(f"{t!r} is neither a token id ([a-z0-9]{{6}}) nor a token ([a-z0-9]{{6}}.[a-z0-9]{{16}})"))
        ids.append(t.split(".", 1)[0])

    async def work(client: Any) -> None:
        for token_id in ids:
            await client.delete(SECRETS, bt.NAMESPACE, bt.secret_name(token_id))

    try:
        asyncio.run(_with_client(kubeconfig, work))
    except ApiError as e:
        _fail(e)
    for token_id in ids:
        click.echo(f"bootstrap token {token_id!r} deleted")

