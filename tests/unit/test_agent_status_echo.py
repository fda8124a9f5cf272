"""What wakes the agent's sync of a pod, and what the sync reads back from the runtime: the
watch's echo of the agent's own status write is no reason to sync again (the kubelet does
not either), while any other change of the pod is; the runtime's view of a pod is read
whole, containers the runtime has lost meanwhile left out."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from kybernetes.agent import podspec, podsync
from kybernetes.agent.agent import Agent
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.client import CriError
from kybernetes.agent.objectcache import ReferencedObjects
from kybernetes.client import WorkQueue
from kybernetes.client.resources import PODS
from kybernetes.testing.fakes import FakeClient, FakeInformer, drain

KEY = "ns/web"


def _pod() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Pending"}}


def _agent(client: FakeClient) -> Agent:
    agent = Agent.__new__(Agent)
    agent.client = client
    agent.queue = WorkQueue("test")
    agent.pods = FakeInformer(PODS)  # type: ignore[assignment]
    agent._own_status = {}
    agent._uid_to_key = {}
    agent.objects = ReferencedObjects(client, agent.queue.add)
    agent.pods.add_handler(on_add=agent._pod_added, on_update=agent._pod_updated, on_delete=agent._pod_deleted)
    return agent


async def test_the_echo_of_its_own_status_write_does_not_sync_the_pod_again() -> None:
    client = FakeClient()
    (stored,) = client.add(PODS, _pod())
    agent = _agent(client)
    agent.pods.upsert(stored)
    assert await drain(agent.queue) == [KEY]

    assert await agent.patch_status(stored, {"phase": "Running"})
    echo = client.objects[("pods", "ns", "web")]
    assert echo["status"]["phase"] == "Running"
    agent.pods.upsert(echo)
    assert await drain(agent.queue) == []

    # Someone else's change of the pod (a readiness gate's condition, say) is acted on.
    (changed,) = client.add(PODS, {**echo, "status": {**echo["status"], "conditions": [
        {"type": "example.com/gate", "status": "True"}]}})
    agent.pods.upsert(changed)
    assert await drain(agent.queue) == [KEY]

    # A deleted pod's entry goes with it.
    agent.pods.delete(changed)
    assert agent._own_status == {}
    agent.queue.shutdown()


async def test_a_pods_configmaps_are_watched_while_it_is_on_the_node_and_not_after() -> None:
    client = FakeClient()
    named = _pod()
    named["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "settings"}}]
    (stored,) = client.add(PODS, named)
    agent = _agent(client)
    agent.pods.upsert(stored)
    assert agent.objects.watched() == {("configmap", "ns", "settings")}
    assert await agent.patch_status(stored, {"phase": "Running"})
    agent.pods.upsert(client.objects[("pods", "ns", "web")])
    assert agent.objects.watched() == {("configmap", "ns", "settings")}
    agent.pods.delete(client.objects[("pods", "ns", "web")])
    assert agent.objects.watched() == set()  # the deletion's sync does not name it again
    await agent.objects.close()
    agent.queue.shutdown()


class _Runtime:
    """Answers the reads of one pod: a sandbox and its containers, one of which the runtime
    loses between the listing and its status."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0

    async def _answer(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1

    async def list_pod_sandboxes(self, label_selector: dict[str, str]) -> list[pb.PodSandbox]:
        assert label_selector == {podspec.POD_UID: "u1"}
        return [pb.PodSandbox(id="old", metadata=pb.PodSandboxMetadata(attempt=0), created_at=1),
                pb.PodSandbox(id="sb", metadata=pb.PodSandboxMetadata(attempt=1), created_at=2)]

    async def pod_sandbox_status(self, sid: str) -> pb.PodSandboxStatusResponse:
        await self._answer()
        resp = pb.PodSandboxStatusResponse()
        resp.status.id = sid
        resp.status.state = pb.SANDBOX_READY
        resp.status.metadata.attempt = 1
        resp.status.network.ip = "10.42.0.7"
        return resp

    async def list_containers(self, sandbox_id: str) -> list[pb.Container]:
        await self._answer()
        assert sandbox_id == "sb"
        return [pb.Container(id=cid) for cid in ("c1", "c2", "gone")]

    async def container_status(self, cid: str) -> pb.ContainerStatusResponse:
        await self._answer()
        if cid == "gone":
            raise CriError("ContainerStatus", grpc.StatusCode.NOT_FOUND, "no such container")
        resp = pb.ContainerStatusResponse()
        resp.status.id = cid
        resp.status.metadata.name = {"c1": "sidecar", "c2": "app"}[cid]
        resp.status.state = pb.CONTAINER_RUNNING if cid == "c1" else pb.CONTAINER_EXITED
        resp.status.exit_code = 0 if cid == "c1" else 3
        return resp


async def test_the_runtime_view_of_a_pod_is_read_whole_without_what_is_gone() -> None:
    agent = Agent.__new__(Agent)
    agent.cri = _Runtime()  # type: ignore[assignment]
    sandbox, containers, stale = await agent._runtime_state("u1")
    assert sandbox is not None and sandbox.id == "sb" and sandbox.ip == "10.42.0.7"
    assert stale == ["old"]
    by_name = {c.name: c for c in containers}
    assert set(by_name) == {"sidecar", "app"}
    assert by_name["sidecar"].state == podsync.RUNNING
    assert by_name["app"].state == podsync.EXITED and by_name["app"].exit_code == 3
    # The reads after the listing went out together.
    assert agent.cri.most_in_flight >= 2  # type: ignore[attr-defined]
