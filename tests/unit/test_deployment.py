"""The Deployment controller's decisions, driven without a server: a small simulated
world plays the ReplicaSet controller and the kubelet (pods appear at once and become
ready a tick later), and the rollout invariants are asserted at every step."""

from __future__ import annotations

import copy
import datetime as dt
import itertools

import pytest

from kybernetes.client.resources import DEPLOYMENTS
from kybernetes.controllers import deployment_plan as dp
from kybernetes.controllers.deployment import DeploymentController
from kybernetes.controllers.deployment_plan import (
    CreateReplicaSet,
    DeleteReplicaSet,
    UpdateReplicaSet,
    claim_replicasets,
    create_conflict_is_ours,
    equal_ignore_hash,
    plan_deployment,
    pod_template_hash,
    resolve_fenceposts,
    scaled_value,
)
from kybernetes.testing.fakes import FakeClient, FakeInformers

T0 = dt.datetime(2026, 11, 24, 17, 0, 0, tzinfo=dt.UTC)
DUID = "69a236b0-e313-4bbc-8e79-8e9202efffda"


def template(image: str = "nginx:1.25", **annotations: str) -> dict:
    meta: dict = {"creationTimestamp": None, "labels": {"app": "web"}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"metadata": meta,
            "spec": {"containers": [{"name": "nginx", "image": image, "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}


def deployment(replicas: int = 3, surge: int | str = "25%", unavailable: int | str = "25%",
               strategy: str = "RollingUpdate", image: str = "nginx:1.25", **spec: object) -> dict:
    strat: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    body = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template(image),
            "strategy": strat, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": DUID, "generation": 1,
                         "resourceVersion": "1", "labels": {"app": "web"}},
            "spec": body}


class World:
    """Deployment + ReplicaSets + pods. Pods of a ReplicaSet whose image is in `broken`
    never become ready."""

    def __init__(self, deploy: dict, broken: frozenset[str] = frozenset()) -> None:
        self.d = deploy
        self.rss: dict[str, dict] = {}
        self.pods: dict[str, list[dt.datetime]] = {}
        self.now = T0
        self.broken = broken
        self.uids = itertools.count(1)
        self.events: list[str] = []
        self.plans: list[dp.Plan] = []

    # the deployment controller
    def reconcile(self, pods_by_rs: dict | None = None) -> dp.Plan:
        plan = plan_deployment(copy.deepcopy(self.d), [copy.deepcopy(r) for r in self.rss.values()],
                               pods_by_rs or {}, self.now)
        self.plans.append(plan)
        for a in plan.actions:
            if isinstance(a, CreateReplicaSet):
                rs = copy.deepcopy(a.obj)
                assert rs["metadata"]["name"] not in self.rss
                rs["metadata"].update(uid=f"rs-{next(self.uids)}", generation=1,
                                      creationTimestamp=self.now.strftime("%Y-%m-%dT%H:%M:%SZ"))
                rs["status"] = {}
                self.rss[rs["metadata"]["name"]] = rs
                self.pods[rs["metadata"]["name"]] = []
            elif isinstance(a, UpdateReplicaSet):
                rs = self.rss[a.name]
                rs["spec"]["replicas"] = a.replicas
                rs["spec"]["minReadySeconds"] = a.min_ready_seconds
                rs["metadata"]["annotations"] = dict(a.annotations)
                rs["metadata"]["generation"] += 1
            elif isinstance(a, DeleteReplicaSet):
                assert self.rss[a.name]["metadata"]["uid"] == a.uid
                del self.rss[a.name]
                del self.pods[a.name]
            if getattr(a, "event", None):
                self.events.append(a.event)
        if plan.annotations:
            self.d["metadata"].setdefault("annotations", {}).update(plan.annotations)
        if plan.status is not None:
            self.d["status"] = copy.deepcopy(plan.status)
        return plan

    def _ready(self, name: str) -> int:
        image = self.rss[name]["spec"]["template"]["spec"]["containers"][0]["image"]
        if image in self.broken:
            return 0
        return sum(1 for t in self.pods[name] if self.now - t >= dt.timedelta(seconds=1))

    # the ReplicaSet controller and the kubelet
    def refresh_status(self) -> None:
        for name, rs in self.rss.items():
            ready = self._ready(name)
            rs["status"] = {"replicas": len(self.pods[name]), "readyReplicas": ready, "availableReplicas": ready,
                            "observedGeneration": rs["metadata"]["generation"]}

    def run_replicasets(self) -> None:
        for name, rs in self.rss.items():
            pods = self.pods[name]
            want = rs["spec"]["replicas"]
            while len(pods) < want:
                pods.append(self.now)
            if len(pods) > want:
                # Not-ready (newest) pods go first, like the real ReplicaSet controller.
                pods.sort()
                del pods[want:]
        self.refresh_status()

    def totals(self) -> tuple[int, int, int]:
        spec = sum(rs["spec"]["replicas"] for rs in self.rss.values())
        pods = sum(len(p) for p in self.pods.values())
        available = sum(self._ready(n) for n in self.rss)
        return spec, pods, available

    def step(self) -> dp.Plan:
        self.now += dt.timedelta(seconds=1)
        self.refresh_status()
        plan = self.reconcile()
        self.run_replicasets()
        return plan

    def settle(self, limit: int = 100, check=None) -> int:
        for i in range(limit):
            self.step()
            if check is not None:
                check(self)
            if self.complete():
                # One more pass records the final conditions and cleans up history.
                self.step()
                return i
        raise AssertionError(f"rollout did not finish: {self.rss_summary()}")

    def complete(self) -> bool:
        st = self.d.get("status") or {}
        n = self.d["spec"]["replicas"]
        cond = dp.get_condition(st, "Progressing")
        return (st.get("updatedReplicas", 0) == n and st.get("replicas", 0) == n
                and st.get("availableReplicas", 0) == n and cond is not None
                and cond["reason"] == "NewReplicaSetAvailable")

    def rss_summary(self) -> dict:
        return {n: (rs["spec"]["replicas"], rs["status"].get("availableReplicas", 0)) for n, rs in self.rss.items()}

    def by_image(self, image: str) -> dict:
        [rs] = [rs for rs in self.rss.values()
                if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image]
        return rs

    def change(self, **spec: object) -> None:
        self.d["spec"].update(spec)
        self.d["metadata"]["generation"] += 1


def started(deploy: dict, **kw) -> World:
    w = World(deploy, **kw)
    w.settle()
    return w


# -- maxSurge / maxUnavailable arithmetic ------------------------------------------------


def test_percentages_round_like_kubernetes():
    assert scaled_value("25%", 10, True) == 3
    assert scaled_value("25%", 10, False) == 2
    assert scaled_value("33%", 10, True) == 4
    assert scaled_value("33%", 10, False) == 3
    assert scaled_value(2, 10, False) == 2
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts("25%", "25%", 1) == (1, 0)
    assert resolve_fenceposts(0, 0, 5) == (0, 1)
    assert resolve_fenceposts("0%", "10%", 5) == (0, 1)
    assert resolve_fenceposts(None, None, 4) == (1, 1)


def test_max_unavailable_is_capped_and_zero_for_recreate():
    assert dp.max_unavailable(deployment(replicas=2, surge=0, unavailable=5)) == 2
    assert dp.max_unavailable(deployment(replicas=0)) == 0
    assert dp.max_unavailable(deployment(strategy="Recreate")) == 0
    assert dp.max_surge(deployment(strategy="Recreate")) == 0


# -- pod template hash -------------------------------------------------------------------


def test_hash_is_stable_and_in_the_safe_alphabet():
    a = template("nginx:1.25")
    b = {"spec": dict(reversed(list(a["spec"].items()))), "metadata": a["metadata"]}
    h = pod_template_hash(a)
    assert h == pod_template_hash(b) == pod_template_hash(copy.deepcopy(a))
    assert 1 <= len(h) <= 10 and set(h) <= set(dp.SAFE_ALPHABET)
    assert pod_template_hash(template("nginx:1.26")) != h
    assert pod_template_hash(a, 1) != h and pod_template_hash(a, 1) != pod_template_hash(a, 2)
    hashes = {pod_template_hash(template(f"img:{i}")) for i in range(200)}
    assert len(hashes) == 200
    assert all(set(x) <= set(dp.SAFE_ALPHABET) and len(x) <= 10 for x in hashes)
    assert sum(8 <= len(x) <= 10 for x in hashes) >= 195


def test_equal_ignore_hash():
    t = template()
    with_hash = copy.deepcopy(t)
    with_hash["metadata"]["labels"]["pod-template-hash"] = "abc"
    del with_hash["metadata"]["creationTimestamp"]
    assert equal_ignore_hash(t, with_hash)
    assert not equal_ignore_hash(t, template("other"))


# -- first rollout -----------------------------------------------------------------------


def test_new_deployment_creates_a_labelled_owned_replicaset():
    d = deployment(replicas=3)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    plan = plan_deployment(d, [], {}, T0)
    [create] = plan.actions
    assert isinstance(create, CreateReplicaSet)
    rs = create.obj
    h = pod_template_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": h}}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": DUID, "controller": True, "blockOwnerDeletion": True}]
    assert rs["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "first", "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "3", "deployment.kubernetes.io/max-replicas": "4"}
    assert rs["spec"]["replicas"] == 3
    assert create.event == f"Scaled up replica set web-{h} from 0 to 3"
    assert plan.annotations == {"deployment.kubernetes.io/revision": "1"}
    st = plan.status
    assert st["observedGeneration"] == 1
    prog = dp.get_condition(st, "Progressing")
    assert prog["status"] == "True" and prog["reason"] == "NewReplicaSetCreated"
    assert prog["message"] == f'Created new replica set "web-{h}"'
    avail = dp.get_condition(st, "Available")
    assert avail == {"type": "Available", "status": "False", "lastUpdateTime": "2026-11-24T17:00:00Z",
                     "lastTransitionTime": "2026-11-24T17:00:00Z", "reason": "MinimumReplicasUnavailable",
                     "message": "Deployment does not have minimum availability."}
    assert plan.requeue_after == pytest.approx(601)
    assert plan.in_progress


def test_first_rollout_completes_with_kubernetes_conditions():
    w = World(deployment(replicas=3))
    w.settle()
    rs = w.by_image("nginx:1.25")
    st = w.d["status"]
    assert {k: st.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == \
        {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    assert "unavailableReplicas" not in st
    assert [c["type"] for c in st["conditions"]] == ["Available", "Progressing"]
    prog = dp.get_condition(st, "Progressing")
    assert prog["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'
    assert dp.get_condition(st, "Available")["reason"] == "MinimumReplicasAvailable"
    assert dp.get_condition(st, "Available")["message"] == "Deployment has minimum availability."
    # Nothing left to do: a further pass writes nothing and does not requeue.
    plan = w.step()
    assert plan.actions == [] and plan.status is None and plan.annotations == {}
    assert plan.requeue_after is None and not plan.in_progress


# -- rolling update ------------------------------------------------------------------------


@pytest.mark.parametrize("replicas,surge,unavailable", [
    (10, "25%", "25%"), (3, 1, 0), (3, 0, 1), (5, "0%", "0%"), (4, "50%", 0), (1, 0, 1), (7, 2, 3),
])
def test_rolling_update_respects_surge_and_unavailability_at_every_step(replicas, surge, unavailable):
    w = started(deployment(replicas=replicas, surge=surge, unavailable=unavailable))
    max_surge, max_unavail = resolve_fenceposts(surge, unavailable, replicas)
    max_unavail = min(max_unavail, replicas)
    old = w.by_image("nginx:1.25")["metadata"]["name"]
    w.events.clear()
    w.change(template=template("nginx:1.26"))
    seen_mixed = False

    def check(world: World) -> None:
        nonlocal seen_mixed
        spec, pods, available = world.totals()
        assert spec <= replicas + max_surge, world.rss_summary()
        assert pods <= replicas + max_surge, world.rss_summary()
        assert available >= replicas - max_unavail, world.rss_summary()
        if len([rs for rs in world.rss.values() if rs["spec"]["replicas"] > 0]) > 1:
            seen_mixed = True

    w.settle(check=check)
    new = w.by_image("nginx:1.26")
    assert new["spec"]["replicas"] == replicas
    assert w.rss[old]["spec"]["replicas"] == 0
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert w.d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert w.d["status"]["observedGeneration"] == 2
    if replicas > 1:
        assert seen_mixed
    assert any(e.startswith(f"Scaled down replica set {old} from ") for e in w.events)
    assert any(e.startswith(f"Scaled up replica set {new['metadata']['name']} from ") for e in w.events)


def test_rolling_update_steps_and_messages():
    w = started(deployment(replicas=4, surge=1, unavailable=0))
    old = w.by_image("nginx:1.25")["metadata"]["name"]
    w.events.clear()
    w.change(template=template("nginx:1.26"))
    w.step()
    new = w.by_image("nginx:1.26")["metadata"]["name"]
    assert w.events == [f"Scaled up replica set {new} from 0 to 1"]
    prog = dp.get_condition(w.d["status"], "Progressing")
    assert prog["reason"] == "NewReplicaSetCreated"
    w.step()  # the new pod is available now: one old one can go
    assert w.events[-1] == f"Scaled down replica set {old} from 4 to 3"
    assert w.rss[old]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "4"
    w.step()
    assert w.events[-1] == f"Scaled up replica set {new} from 1 to 2"
    prog = dp.get_condition(w.d["status"], "Progressing")
    assert prog["reason"] == "ReplicaSetUpdated" and prog["message"] == f'ReplicaSet "{new}" is progressing.'
    # kubectl rollout status reads these counters.
    assert w.d["status"]["updatedReplicas"] == 1 and w.d["status"]["replicas"] == 4


def test_change_cause_is_copied_to_the_new_replicaset():
    w = started(deployment(replicas=2))
    w.d["metadata"]["annotations"]["kubernetes.io/change-cause"] = "kubectl set image deployment/web nginx=nginx:1.26"
    w.change(template=template("nginx:1.26"))
    w.settle()
    ann = w.by_image("nginx:1.26")["metadata"]["annotations"]
    assert ann["kubernetes.io/change-cause"] == "kubectl set image deployment/web nginx=nginx:1.26"
    assert "kubernetes.io/change-cause" not in w.by_image("nginx:1.25")["metadata"]["annotations"]


def test_rollout_restart_annotation_makes_a_new_replicaset():
    w = started(deployment(replicas=2))
    before = set(w.rss)
    w.change(template=template("nginx:1.25", **{"kubectl.kubernetes.io/restartedAt": "2026-11-24T17:28:27Z"}))
    w.settle()
    assert len(w.rss) == 2
    [new] = set(w.rss) - before
    assert w.rss[new]["spec"]["replicas"] == 2
    assert w.rss[new]["spec"]["template"]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/restartedAt": "2026-11-24T17:28:27Z"}


# -- rollback --------------------------------------------------------------------------------


def test_rollback_reuses_the_old_replicaset_with_a_new_revision():
    w = started(deployment(replicas=3))
    w.change(template=template("nginx:1.26"))
    w.settle()
    v1 = w.by_image("nginx:1.25")
    v1_name = v1["metadata"]["name"]
    assert v1["spec"]["replicas"] == 0
    # What `kubectl rollout undo` sends: the old ReplicaSet's template without the hash label.
    undo = copy.deepcopy(v1["spec"]["template"])
    del undo["metadata"]["labels"]["pod-template-hash"]
    w.change(template=undo)
    w.now += dt.timedelta(seconds=1)
    plan = w.reconcile()
    assert not any(isinstance(a, CreateReplicaSet) for a in plan.actions)
    ann = w.rss[v1_name]["metadata"]["annotations"]
    assert ann["deployment.kubernetes.io/revision"] == "3"
    assert ann["deployment.kubernetes.io/revision-history"] == "1"
    assert w.d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    w.run_replicasets()
    w.settle()
    assert w.rss[v1_name]["spec"]["replicas"] == 3
    assert w.by_image("nginx:1.26")["spec"]["replicas"] == 0
    assert len(w.rss) == 2
    # Rolling back again appends to the history.
    v2 = w.by_image("nginx:1.26")
    back = copy.deepcopy(v2["spec"]["template"])
    del back["metadata"]["labels"]["pod-template-hash"]
    w.change(template=back)
    w.settle()
    assert w.by_image("nginx:1.26")["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    assert w.by_image("nginx:1.26")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"


# -- Recreate ----------------------------------------------------------------------------------


def test_recreate_scales_old_down_and_waits_for_its_pods_before_creating_new():
    w = started(deployment(replicas=3, strategy="Recreate"))
    old = w.by_image("nginx:1.25")
    old_name = old["metadata"]["name"]
    w.events.clear()
    w.change(template=template("nginx:1.26"))
    plan = w.reconcile()
    assert [type(a) for a in plan.actions] == [UpdateReplicaSet]
    assert w.events == [f"Scaled down replica set {old_name} from 3 to 0"]
    # The old ReplicaSet still reports pods: nothing new yet.
    plan = w.reconcile()
    assert plan.actions == []
    # Its status says 0 but a pod is still terminating.
    w.rss[old_name]["status"] = {"replicas": 0, "observedGeneration": 2}
    terminating = {"metadata": {"name": "p", "deletionTimestamp": "2026-11-24T17:00:00Z"},
                   "status": {"phase": "Running"}}
    plan = w.reconcile({old["metadata"]["uid"]: [terminating]})
    assert plan.actions == []
    # A finished pod does not hold the rollout.
    plan = w.reconcile({old["metadata"]["uid"]: [{"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}}]})
    [create] = plan.actions
    assert isinstance(create, CreateReplicaSet) and create.obj["spec"]["replicas"] == 3
    assert create.event == f"Scaled up replica set {create.obj['metadata']['name']} from 0 to 3"
    w.pods[old_name] = []
    w.run_replicasets()
    w.settle()
    assert w.by_image("nginx:1.26")["spec"]["replicas"] == 3


def test_recreate_never_runs_old_and_new_pods_together():
    w = started(deployment(replicas=4, strategy="Recreate"))
    w.change(template=template("nginx:1.26"))

    def check(world: World) -> None:
        running = [n for n, pods in world.pods.items() if pods]
        assert len(running) <= 1

    w.settle(check=check)


# -- pause / resume -----------------------------------------------------------------------------


def test_paused_deployment_scales_but_does_not_roll_out():
    w = started(deployment(replicas=3))
    w.change(paused=True, template=template("nginx:1.26"))
    plan = w.step()
    assert not any(isinstance(a, CreateReplicaSet) for a in plan.actions)
    prog = dp.get_condition(w.d["status"], "Progressing")
    assert (prog["status"], prog["reason"], prog["message"]) == ("Unknown", "DeploymentPaused",
                                                                 "Deployment is paused")
    assert w.d["status"]["observedGeneration"] == 2
    assert not plan.in_progress and plan.requeue_after is None
    w.change(replicas=5)
    w.step()
    only = w.by_image("nginx:1.25")
    assert only["spec"]["replicas"] == 5 and len(w.rss) == 1
    assert only["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    # Resume: the rollout starts.
    w.change(paused=None)
    plan = w.step()
    assert any(isinstance(a, CreateReplicaSet) for a in plan.actions)
    assert dp.get_condition(w.d["status"], "Progressing")["status"] == "True"
    w.settle()
    assert w.by_image("nginx:1.26")["spec"]["replicas"] == 5


def test_resume_without_changes_records_resumed_condition_until_progress():
    d = deployment(replicas=2)
    w = started(d)
    w.change(paused=True)
    w.step()
    w.change(paused=False)
    p = dp._Pass(copy.deepcopy(w.d), list(w.rss.values()), w.now)
    p.check_paused_conditions()
    cond = dp.get_condition(p.status, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "DeploymentResumed",
                                                                 "Deployment is resumed")


# -- proportional scaling ---------------------------------------------------------------------------


def test_scaling_mid_rollout_keeps_proportions():
    # The example of the Kubernetes documentation: 10 replicas, maxSurge 3, maxUnavailable 2,
    # a rollout to an image that never becomes ready, then a scale to 15.
    w = started(deployment(replicas=10, surge=3, unavailable=2), broken=frozenset({"nginx:404"}))
    w.change(template=template("nginx:404"))
    for _ in range(10):
        w.step()
    old, new = w.by_image("nginx:1.25"), w.by_image("nginx:404")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)
    w.events.clear()
    w.change(replicas=15)
    plan = w.step()
    assert all(isinstance(a, UpdateReplicaSet) for a in plan.actions)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (11, 7)
    assert sorted(w.events) == sorted([f"Scaled up replica set {old['metadata']['name']} from 8 to 11",
                                       f"Scaled up replica set {new['metadata']['name']} from 5 to 7"])
    for rs in (old, new):
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "15"
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "18"
    # Scaling down mid-rollout also keeps the shares and the total within the ceiling.
    w.change(replicas=5)
    w.step()
    total = old["spec"]["replicas"] + new["spec"]["replicas"]
    assert total == 5 + 3
    assert old["spec"]["replicas"] > new["spec"]["replicas"] > 0


def test_scaling_to_zero_mid_rollout_and_back():
    w = started(deployment(replicas=6, surge=2, unavailable=0), broken=frozenset({"nginx:404"}))
    w.change(template=template("nginx:404"))
    for _ in range(3):
        w.step()
    w.change(replicas=0)
    w.step()
    assert all(rs["spec"]["replicas"] == 0 for rs in w.rss.values())
    w.change(replicas=6)
    w.step()
    # With nothing active the newest ReplicaSet gets everything.
    assert w.by_image("nginx:404")["spec"]["replicas"] == 6


# -- history cleanup ------------------------------------------------------------------------------------


def test_revision_history_limit_deletes_the_oldest_idle_replicasets():
    w = started(deployment(replicas=2, revisionHistoryLimit=2))
    for i in range(2, 6):
        w.change(template=template(f"nginx:1.{i}"))
        w.settle()
    revisions = sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                       for rs in w.rss.values())
    assert revisions == [3, 4, 5]
    assert w.by_image("nginx:1.5")["spec"]["replicas"] == 2


def test_cleanup_spares_replicasets_with_replicas_or_unobserved_changes():
    d = deployment(replicas=1, revisionHistoryLimit=0)
    w = started(d)
    w.change(template=template("nginx:1.26"))
    w.settle()
    assert len(w.rss) == 1
    # An old ReplicaSet still running pods is not deleted even beyond the limit.
    d2 = copy.deepcopy(w.d)
    current = list(w.rss.values())[0]
    idle = copy.deepcopy(current)
    idle["metadata"].update(name="web-old", uid="old", creationTimestamp="2026-01-01T00:00:00Z",
                            annotations={"deployment.kubernetes.io/revision": "1"})
    idle["spec"]["template"] = template("nginx:1.0")
    idle["spec"]["replicas"] = 0
    idle["status"] = {"replicas": 1}
    plan = plan_deployment(d2, [current, idle], {}, w.now)
    assert not any(isinstance(a, DeleteReplicaSet) for a in plan.actions)
    idle["status"] = {"replicas": 0, "observedGeneration": 1}
    idle["metadata"]["generation"] = 1
    plan = plan_deployment(d2, [current, idle], {}, w.now)
    assert [a for a in plan.actions if isinstance(a, DeleteReplicaSet)] == [DeleteReplicaSet("web-old", "old")]


# -- progress deadline -------------------------------------------------------------------------------


def test_progress_deadline_exceeded():
    w = started(deployment(replicas=2, progressDeadlineSeconds=30), broken=frozenset({"nginx:404"}))
    w.change(template=template("nginx:404"))
    plan = w.step()
    assert 25 < plan.requeue_after <= 31
    new = w.by_image("nginx:404")["metadata"]["name"]
    for _ in range(40):
        plan = w.step()
        prog = dp.get_condition(w.d["status"], "Progressing")
        if prog["reason"] == "ProgressDeadlineExceeded":
            break
    assert prog["status"] == "False"
    assert prog["message"] == f'ReplicaSet "{new}" has timed out progressing.'
    assert plan.requeue_after is None
    # Once timed out it stays so (kubectl rollout status exits 1) until something changes.
    w.step()
    assert dp.get_condition(w.d["status"], "Progressing")["reason"] == "ProgressDeadlineExceeded"
    # A paused condition does not overwrite the timeout.
    w.change(paused=True)
    w.step()
    assert dp.get_condition(w.d["status"], "Progressing")["reason"] == "ProgressDeadlineExceeded"


def test_progress_refreshes_the_deadline():
    w = started(deployment(replicas=4, surge=1, unavailable=0, progressDeadlineSeconds=600))
    w.change(template=template("nginx:1.26"))
    w.step()
    w.step()
    w.step()
    prog = dp.get_condition(w.d["status"], "Progressing")
    assert prog["reason"] == "ReplicaSetUpdated"
    assert prog["lastUpdateTime"] == w.now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_no_progress_deadline_means_no_progressing_condition():
    d = deployment(replicas=1, progressDeadlineSeconds=2**31 - 1)
    w = World(d)
    for _ in range(5):
        w.step()
    assert dp.get_condition(w.d["status"], "Progressing") is None
    assert dp.get_condition(w.d["status"], "Available")["status"] == "True"


def test_replica_failure_is_surfaced():
    w = started(deployment(replicas=1))
    rs = next(iter(w.rss.values()))
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
               "message": "pods \"x\" is forbidden: exceeded quota", "lastTransitionTime": "2026-11-24T17:00:00Z"}
    rs["status"]["conditions"] = [failure]
    w.d["spec"]["replicas"] = 2
    w.d["metadata"]["generation"] += 1
    # The resize pass only scales; the next pass goes through the rollout path, which
    # copies the ReplicaSet's failure onto the deployment.
    w.reconcile()
    plan = plan_deployment(copy.deepcopy(w.d), list(w.rss.values()), {}, w.now)
    st = plan.status if plan.status is not None else w.d["status"]
    assert dp.get_condition(st, "ReplicaFailure")["reason"] == "FailedCreate"


# -- adoption, collisions ------------------------------------------------------------------------------


def _rs(name: str, labels: dict, owner: str | None = None, ns: str = "default") -> dict:
    meta: dict = {"name": name, "namespace": ns, "uid": f"u-{name}", "labels": labels, "resourceVersion": "5"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": owner,
                                    "controller": True}]
    return {"metadata": meta, "spec": {"replicas": 1, "template": template()}}


def test_claim_adopts_orphans_and_releases_mismatches():
    d = deployment()
    mine = _rs("mine", {"app": "web"}, DUID)
    orphan = _rs("orphan", {"app": "web", "x": "y"})
    stray = _rs("stray", {"app": "other"}, DUID)
    foreign = _rs("foreign", {"app": "web"}, "someone-else")
    unrelated = _rs("unrelated", {"app": "other"})
    elsewhere = _rs("elsewhere", {"app": "web"}, ns="other")
    claim = claim_replicasets(d, [mine, orphan, stray, foreign, unrelated, elsewhere])
    assert [r["metadata"]["name"] for r in claim.owned] == ["mine"]
    assert [r["metadata"]["name"] for r in claim.adopt] == ["orphan"]
    assert [r["metadata"]["name"] for r in claim.release] == ["stray"]
    patch = dp.adoption_patch(orphan, d)
    assert patch["metadata"]["resourceVersion"] == "5"
    assert patch["metadata"]["ownerReferences"][0]["uid"] == DUID
    assert dp.release_patch(stray, d) == {"metadata": {"ownerReferences": None, "resourceVersion": "5"}}
    d["metadata"]["deletionTimestamp"] = "2026-11-24T17:00:00Z"
    claim = claim_replicasets(d, [mine, orphan, stray])
    assert claim.adopt == [] and claim.release == [] and [r["metadata"]["name"] for r in claim.owned] == ["mine"]


def test_create_conflict_ours_or_collision():
    d = deployment()
    plan = plan_deployment(d, [], {}, T0)
    existing = copy.deepcopy(plan.actions[0].obj)
    assert create_conflict_is_ours(d, existing)
    existing["spec"]["template"] = template("nginx:other")
    assert not create_conflict_is_ours(d, existing)
    d["status"] = dp.status_with_collision(d)
    assert d["status"]["collisionCount"] == 1
    plan2 = plan_deployment(d, [], {}, T0)
    assert plan2.actions[0].obj["metadata"]["name"] != plan.actions[0].obj["metadata"]["name"]
    assert plan2.status["collisionCount"] == 1


def test_selecting_everything_is_refused():
    d = deployment()
    d["spec"]["selector"] = {}
    plan = plan_deployment(d, [], {}, T0)
    assert plan.actions == [] and plan.warnings[0][0] == "SelectingAll"
    assert plan.status == {"observedGeneration": 1}


# -- the shell, against a fake client ----------------------------------------------------------------------


async def test_controller_sync_writes_replicaset_annotation_and_status():
    d = deployment(replicas=2)
    d["metadata"]["resourceVersion"] = "7"
    informers = FakeInformers()
    informers[DEPLOYMENTS].upsert(d)
    client = FakeClient()
    client.add(DEPLOYMENTS, d)
    ctl = DeploymentController(client, informers)
    await ctl.sync("default/web")
    assert [c.verb for c in client.calls] == ["create", "event", "patch", "update"]
    h = pod_template_hash(d["spec"]["template"])
    create = client.calls[0]
    assert (create.resource, create.body["metadata"]["name"], create.body["spec"]["replicas"]) == \
        ("replicasets", f"web-{h}", 2)
    ev = client.events[0]
    assert (ev.kind, ev.reason, ev.message, ev.component) == (
        "Deployment", "ScalingReplicaSet", f"Scaled up replica set web-{h} from 0 to 2", "deployment-controller")
    assert client.calls[2].body == {"metadata": {"resourceVersion": "7",
                                                 "annotations": {"deployment.kubernetes.io/revision": "1"}}}
    # The status write carries the resourceVersion the annotation patch returned.
    update = client.calls[3]
    assert (update.resource, update.name, update.subresource) == ("deployments", "web", "status")
    assert update.body["metadata"]["resourceVersion"] == "12"
    assert client.stored(DEPLOYMENTS, "default", "web")["status"] == update.body["status"]
