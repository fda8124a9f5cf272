"""gRPC probes: the agent asks grpc.health.v1.Health/Check of a real gRPC server and
judges by its answer, as the kubelet does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from grpc import aio

from kybernetes.agent.probes import health_check_request, health_check_status, run_probe


async def _no_exec(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    raise AssertionError("a grpc probe runs no command")


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[int, dict[str, int], list[bytes]]]:
    """A gRPC server whose Health/Check answers each service's status from a dict
    (NOT_FOUND for others, as grpc-go's health server), recording the requests."""
    statuses: dict[str, int] = {}
    seen: list[bytes] = []

    async def check(request: bytes, context: aio.ServicerContext) -> bytes:
        seen.append(request)
        service = request[2:].decode() if request else ""
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return bytes([0x08, statuses[service]])

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                      response_serializer=lambda b: b)})
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, statuses, seen
    finally:
        await server.stop(None)


def test_health_messages_round_trip() -> None:
    assert health_check_request("") == b""
    assert health_check_request("db") == b"\x0a\x02db"
    assert health_check_request("s" * 200)[:3] == b"\x0a\xc8\x01"
    assert health_check_status(b"") == 0
    assert health_check_status(b"\x08\x01") == 1
    assert health_check_status(b"\x08\x02") == 2


async def test_grpc_probe_follows_the_serving_status(health_server: tuple[int, dict[str, int], list[bytes]]) -> None:
    port, statuses, seen = health_server
    async with aiohttp.ClientSession() as session:
        statuses[""] = 1
        assert await run_probe({"grpc": {"port": port}}, {}, "127.0.0.1", _no_exec, session) == (True, "")
        statuses[""] = 2
        ok, why = await run_probe({"grpc": {"port": port}}, {}, "127.0.0.1", _no_exec, session)
        assert not ok and "NOT_SERVING" in why
        statuses["db"] = 1
        assert (await run_probe({"grpc": {"port": port, "service": "db"}}, {}, "127.0.0.1", _no_exec, session))[0]
        assert seen[-1] == b"\x0a\x02db"
        ok, why = await run_probe({"grpc": {"port": port, "service": "other"}}, {}, "127.0.0.1", _no_exec, session)
        assert not ok and "unknown service" in why


async def test_grpc_probe_fails_when_nothing_listens() -> None:
    async with aiohttp.ClientSession() as session:
        ok, why = await run_probe({"grpc": {"port": 1}, "timeoutSeconds": 2}, {}, "127.0.0.1", _no_exec, session)
    assert not ok and "127.0.0.1:1" in why
