"""Which API servers a client may use: the `default/kubernetes` Endpoints, kept fresh.

Every API server lists itself in the `kubernetes` Endpoints while it is alive (see
apiserver/systemservices.py). A node agent that joined through one server reads that
list and hands it to its `ApiClient`, which then fails over between the servers (as a
k3s agent's client-side load balancer does). The server it joined through stays in the
list: it may be a name or a load balancer address that the Endpoints do not show. The list
is also kept in a file, so an agent restarted while the server it joined through is down
still finds the others.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from typing import Any

import aiohttp

from kybernetes.api.errors import ApiError
from kybernetes.client.api import ApiClient
from kybernetes.client.resources import ENDPOINTS

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0


def _url(ip: str, port: int) -> str:
    try:
        host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        host = ip
    return f"https://{host}:{port}"


def endpoint_urls(endpoints: dict[str, Any] | None) -> list[str]:
    """The https URLs of the ready addresses of the `kubernetes` Endpoints, sorted."""
    urls = set()
    for subset in (endpoints or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == "https"), None)
        if port is None and ports:
            port = ports[0].get("port")
        if not isinstance(port, int):
            continue
        for addr in subset.get("addresses") or []:
            if addr.get("ip"):
                urls.add(_url(str(addr["ip"]), port))
    return sorted(urls)


def known_servers(discovered: list[str], joined: str, current: list[str]) -> list[str]:
    """The servers to use: those the Endpoints list, then the one joined through. An empty
    Endpoints (a moment when every lease looked expired) keeps what was known."""
    if not discovered:
        return current
    joined = joined.rstrip("/")
    return [*discovered, *([joined] if joined not in discovered else [])]


async def refresh_servers(client: ApiClient, joined: str) -> list[str]:
    """Read the Endpoints once and update the client's servers; the servers now known."""
    eps = await client.get(ENDPOINTS, "default", "kubernetes")
    client.set_servers(known_servers(endpoint_urls(eps), joined, client.servers))
    return client.servers


def load_servers(path: str) -> list[str]:
    """The servers saved by `keep_servers_fresh` (none if the file is missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    servers = data.get("servers") if isinstance(data, dict) else None
    return [s for s in servers if isinstance(s, str) and s.startswith(("https://", "http://"))] if isinstance(servers, list) else []


def save_servers(path: str, servers: list[str]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"servers": servers}, f)
    os.replace(tmp, path)


async def keep_servers_fresh(client: ApiClient, joined: str | None = None, every: float = REFRESH_SECONDS,
                             state_file: str | None = None) -> None:
    """Keep the client's servers in step with the Endpoints (and `state_file`, if given, with
    the client's servers). Runs until cancelled."""
    joined = joined or client.base_url
    saved: list[str] = load_servers(state_file) if state_file else []
    while True:
        try:
            servers = await refresh_servers(client, joined)
            if state_file and servers != saved:
                await asyncio.to_thread(save_servers, state_file, servers)
                saved = servers
        except (ApiError, aiohttp.ClientError, TimeoutError, OSError) as e:
            # Unreadable for now (no server reachable, or no right to read it): the
            # known servers stay as they are.
            log.info("could not refresh the API server list: %s", e)
        await asyncio.sleep(every)
