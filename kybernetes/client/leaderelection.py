"""Leader election on a coordination.k8s.io Lease, so two processes never run the same controller.

The holder renews `renewTime` every `retry_period`; others take the lease only
once it has not been renewed for `lease_duration`. Writes carry the Lease's
resourceVersion, so two candidates cannot both win a race. A leader that fails
to renew within `renew_deadline` stops its work before anyone else can take over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.timefmt import parse_time, rfc3339_micro
from kybernetes.client.protocols import Client
from kybernetes.client.resources import LEASES

log = logging.getLogger(__name__)


def lease_is_free(lease: dict[str, Any], identity: str, now: dt.datetime) -> bool:
    """May `identity` take or keep this lease now?"""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == identity:
        return True
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 15)
    return renewed is None or (now - renewed).total_seconds() > duration


class LeaderElector:
    def __init__(self, client: Client, namespace: str, name: str, identity: str, lease_duration: int = 15,
                 renew_deadline: float = 10.0, retry_period: float = 2.0) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.leading = False

    async def _try_acquire_or_renew(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
        except ApiError as e:
            if e.code != 404:
                raise
            body = {"metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_duration,
                             "acquireTime": rfc3339_micro(now), "renewTime": rfc3339_micro(now), "leaseTransitions": 0}}
            try:
                await self.client.create(LEASES, self.namespace, body, field_manager="leader-election")
                return True
            except ApiError as e2:
                if e2.code == 409:
                    return False
                raise
        if not lease_is_free(lease, self.identity, now):
            return False
        spec = lease.setdefault("spec", {})
        if spec.get("holderIdentity") != self.identity:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = rfc3339_micro(now)
            spec["holderIdentity"] = self.identity
        spec["renewTime"] = rfc3339_micro(now)
        spec["leaseDurationSeconds"] = self.lease_duration
        try:
            await self.client.update(LEASES, self.namespace, self.name, lease, field_manager="leader-election")
        except ApiError as e:
            if e.code == 409:
                return False
            raise
        return True

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work()` while leading; stop it when leadership is lost, then try again."""
        while True:
            if not await self._attempt():
                await asyncio.sleep(self.retry_period)
                continue
            self.leading = True
            log.info("%s: became leader of %s/%s", self.identity, self.namespace, self.name)
            task = asyncio.create_task(work())
            try:
                await self._keep(task)
            finally:
                self.leading = False
                if not task.done():
                    task.cancel()
                    try:
                        await task
                    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping the work
                        pass
            if task.done() and not task.cancelled() and task.exception() is None:
                return
            log.warning("%s: lost leadership of %s/%s", self.identity, self.namespace, self.name)

    async def _attempt(self) -> bool:
        try:
            return await self._try_acquire_or_renew()
        except Exception as e:  # noqa: BLE001 - the API may be briefly unreachable
            log.info("leader election %s: %s", self.name, e)
            return False

    async def _keep(self, task: asyncio.Task[None]) -> None:
        last_renew = asyncio.get_running_loop().time()
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.retry_period)
            if done:
                return
            if await self._attempt():
                last_renew = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last_renew > self.renew_deadline:
                return
