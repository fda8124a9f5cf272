"""exec probes whose command outlives timeoutSeconds fail (and so restart the container
for liveness), whether the runtime reports the timeout or never answers."""

from __future__ import annotations

import asyncio

import aiohttp

from kybernetes.agent.probes import run_probe

PROBE = {"exec": {"command": ["sh", "-c", "sleep 10"]}, "timeoutSeconds": 1}


async def test_a_timeout_the_runtime_reports_fails_the_probe() -> None:
    async def runtime_timeout(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        raise RuntimeError("failed to exec in container: timeout 1s exceeded: context deadline exceeded")

    async with aiohttp.ClientSession() as session:
        ok, why = await run_probe(PROBE, {}, "127.0.0.1", runtime_timeout, session)
    assert not ok and "timed out" in why


async def test_a_runtime_that_never_answers_fails_the_probe() -> None:
    async def hangs(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        await asyncio.sleep(30)
        return 0, b"", b""

    async with aiohttp.ClientSession() as session:
        ok, why = await asyncio.wait_for(run_probe(PROBE, {}, "127.0.0.1", hangs, session), 10)
    assert not ok and "timeout" in why


async def test_other_runtime_errors_fail_the_probe_with_their_message() -> None:
    async def gone(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        raise RuntimeError("container not found")

    async with aiohttp.ClientSession() as session:
        ok, why = await run_probe(PROBE, {}, "127.0.0.1", gone, session)
    assert not ok and "container not found" in why
