"""The progress deadline never turns into a hot requeue loop.

Under Kubernetes' conformance specs the controller manager spun at 100% CPU on a
1-replica Deployment whose rollout had completed (Progressing reason
NewReplicaSetAvailable) but whose only pod was no longer ready: past the progress
deadline the Deployment was requeued with no delay, for ever, and no other controller
ran. These tests build exactly that state and the neighbouring ones."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from kybernetes.client.reconcile import Result
from kybernetes.client.resources import DEPLOYMENTS, REPLICASETS
from kybernetes.controllers import deployment_plan as dp
from kybernetes.controllers.deployment import DeploymentController
from kybernetes.controllers.deployment_plan import CreateReplicaSet, plan_deployment, requeue_for_deadline
from kybernetes.testing.fakes import FakeClient, FakeInformers

T0 = dt.datetime(2026, 12, 6, 5, 0, 0, tzinfo=dt.UTC)
UID = "6f1e0c1a-0d5c-4d0e-9a4b-1f2e3d4c5b6a"


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _deployment(deadline: int = 60) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "sample-webhook-deployment", "namespace": "webhook", "uid": UID,
                         "generation": 1, "resourceVersion": "5",
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "webhook"}},
                     "progressDeadlineSeconds": deadline, "revisionHistoryLimit": 10,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "webhook"}},
                                  "spec": {"containers": [{"name": "webhook", "image": "webhook:1"}]}}}}


def stuck(reason: str, since: dt.datetime, deadline: int = 60) -> tuple[dict[str, Any], dict[str, Any]]:
    """A 1-replica Deployment and its one ReplicaSet whose only pod is not ready, with
    the Progressing condition last updated at `since` with `reason`."""
    d = _deployment(deadline)
    [create] = [a for a in plan_deployment(copy.deepcopy(d), [], {}, T0).actions if isinstance(a, CreateReplicaSet)]
    rs = copy.deepcopy(create.obj)
    rs["metadata"].update(uid="rs-1", generation=1, resourceVersion="4", creationTimestamp=_stamp(since))
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    rs["spec"]["replicas"] = 1
    rs["status"] = {"replicas": 1, "observedGeneration": 1}
    progressing_status = "True" if reason != dp.TIMED_OUT else "False"
    d["status"] = {
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
        "conditions": [
            {"type": "Progressing", "status": progressing_status, "reason": reason, "message": "...",
             "lastUpdateTime": _stamp(since), "lastTransitionTime": _stamp(since)},
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability.",
             "lastUpdateTime": _stamp(since), "lastTransitionTime": _stamp(since)},
        ]}
    return d, rs


def test_completed_rollout_that_lost_its_pod_is_not_requeued_past_the_deadline():
    d, rs = stuck(dp.NEW_RS_AVAILABLE, T0 - dt.timedelta(minutes=20))
    plan = plan_deployment(copy.deepcopy(d), [copy.deepcopy(rs)], {}, T0)
    # Nothing to write, and nothing the clock can change: ReplicaSet events wake it up.
    assert plan.actions == [] and plan.status is None
    assert plan.requeue_after is None
    assert not plan.in_progress
    # As in Kubernetes, a finished rollout is not judged against its deadline again.
    assert requeue_for_deadline(d, d["status"], T0) is None


def test_rollout_past_its_deadline_times_out_once_and_then_rests():
    d, rs = stuck(dp.RS_UPDATED, T0 - dt.timedelta(seconds=61))
    plan = plan_deployment(copy.deepcopy(d), [copy.deepcopy(rs)], {}, T0)
    prog = dp.get_condition(plan.status, "Progressing")
    assert (prog["status"], prog["reason"]) == ("False", dp.TIMED_OUT)
    assert plan.requeue_after is None and not plan.in_progress
    d["status"] = plan.status
    for later in (T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(hours=1)):
        again = plan_deployment(copy.deepcopy(d), [copy.deepcopy(rs)], {}, later)
        assert again.status is None and again.actions == []
        assert again.requeue_after is None and not again.in_progress


def test_deadline_check_is_due_after_the_deadline_never_now():
    d, rs = stuck(dp.RS_UPDATED, T0 - dt.timedelta(seconds=30))
    plan = plan_deployment(copy.deepcopy(d), [copy.deepcopy(rs)], {}, T0)
    assert plan.status is None
    assert plan.requeue_after == 31
    # Half a second before the deadline: look again once it has passed, not in a loop until then.
    half = T0 - dt.timedelta(milliseconds=500)
    d2, _ = stuck(dp.RS_UPDATED, T0 - dt.timedelta(seconds=60))
    assert requeue_for_deadline(d2, d2["status"], half) == 1.5


# -- the controller shell: what the work queue is told ---------------------------------------------


async def test_controller_sync_of_the_stuck_deployment_does_not_requeue_it():
    d, rs = stuck(dp.NEW_RS_AVAILABLE, T0 - dt.timedelta(minutes=20))
    informers, client = FakeInformers(), FakeClient()
    ctl = DeploymentController(client, informers)
    informers[DEPLOYMENTS].upsert(d)
    informers[REPLICASETS].upsert(rs)
    key = "webhook/sample-webhook-deployment"
    assert await ctl.queue.get() == key  # queued by the informer's add, as a worker would take it
    result = await ctl.sync(key)
    ctl.queue.done(key)
    assert result == Result.done()
    assert client.calls == []  # the stuck Deployment needs no write
    assert len(ctl.queue) == 0 and ctl.queue.failures(key) == 0
