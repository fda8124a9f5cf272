"""The node's local storage eviction loop (the shell of `agent.eviction`): every
housekeeping interval it measures the pods that have a local storage limit, and only
those: their disk-backed emptyDirs' trees, their containers' writable layers and logs
(as `agent.statsreader` reads them for the stats API). A pod over a limit is evicted as
the kubelet does: a warning event, phase Failed with reason Evicted, its containers
killed within a second; a Failed pod is never started again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from kybernetes.agent import eviction, podsync
from kybernetes.agent.cri.client import CriError
from kybernetes.agent.statsreader import HOUSEKEEPING_SECONDS, StatsReader, _dir_usage
from kybernetes.api.errors import ApiError
from kybernetes.api.pods import qos_class
from kybernetes.client import object_key

if TYPE_CHECKING:
    from kybernetes.agent.agent import Agent

log = logging.getLogger(__name__)

# Seconds between rounds; tests shorten it (the kubelet's housekeeping interval is 10 s).
INTERVAL_ENV = "KYB_EVICTION_INTERVAL_SECONDS"


def interval_from_env() -> float:
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return HOUSEKEEPING_SECONDS
    return value if value > 0 else HOUSEKEEPING_SECONDS


class StorageEvictor:
    def __init__(self, agent: Agent, interval: float | None = None, stats: StatsReader | None = None) -> None:
        self.agent = agent
        self.interval = interval if interval is not None else interval_from_env()
        self.stats = stats or StatsReader(agent.cri, agent.name)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except (CriError, ApiError, OSError) as e:
                log.warning("local storage eviction: %s", e)
            except Exception:  # the loop outlives a round's surprise, as the kubelet's does
                log.exception("local storage eviction")

    async def usage(self, pods: list[dict]) -> dict[str, eviction.PodUsage]:
        """Each pod's measured usage, by uid."""
        snap = await self.stats.snapshot(fresh_seconds=self.interval / 2)
        by_uid = {p.uid: p for p in snap.pods}
        out = {}
        for pod in pods:
            uid = pod["metadata"].get("uid", "")
            # Where VolumeManager.setup makes them.
            base = os.path.join(self.agent.volumes.pod_dir(uid), "volumes", "empty-dir")
            volumes = {}
            for name in eviction.disk_empty_dirs(pod):
                path = os.path.join(base, name)
                if os.path.isdir(path):
                    volumes[name] = (await asyncio.to_thread(_dir_usage, path))[0]
            containers = {}
            sample = by_uid.get(uid)
            for c in sample.containers if sample is not None else ():
                containers[c.name] = sum(f.used or 0 for f in (c.rootfs, c.logs) if f is not None)
            out[uid] = eviction.PodUsage(volumes, containers)
        return out

    async def check(self) -> None:
        pods = [p for p in self.agent.pods.list() if eviction.evictable(p)]
        if not pods:
            return
        usage = await self.usage(pods)
        for pod in pods:
            message = eviction.eviction_message(pod, usage[pod["metadata"].get("uid", "")])
            if message is not None:
                await self.evict(pod, message)

    async def evict(self, pod: dict, message: str) -> None:
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        log.info("evicting pod %s/%s: %s", meta.get("namespace"), meta.get("name"), message)
        self.agent._event(pod, "", "Warning", eviction.REASON, message)
        status = {**eviction.evicted_status(message), "qosClass": qos_class(pod)}
        if not await self.agent.patch_status(pod, status):
            return
        # Its syncs see it Failed before its containers stop, else one would start them again.
        deadline = time.monotonic() + 5
        key = object_key(pod)
        while time.monotonic() < deadline:
            seen = self.agent.pods.get(meta.get("namespace") or None, meta.get("name", ""))
            if seen is None or (seen.get("status") or {}).get("phase") == "Failed":
                break
            await asyncio.sleep(0.1)
        _sandbox, containers, _ = await self.agent._runtime_state(uid)
        await asyncio.gather(*(self.agent._stop_container(c.id, eviction.GRACE_SECONDS) for c in containers
                               if c.state in (podsync.RUNNING, podsync.CREATED)))
        # The pod's own sync stops its sandbox and reports its containers' ends.
        self.agent.queue.add(key)
