"""Escalation checks on updates that change only what the garbage collector writes
(upstream's IsOnlyMutatingGCFields): skipped for owner references and finalizers,
kept for everything else."""

from __future__ import annotations

import copy

import orjson
import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import Requester
from kybernetes.api.rbac import only_gc_fields_changed
from kybernetes.api.registry import builtin_resources
from kybernetes.apiserver.authz import Authorizer
from kybernetes.apiserver.watchcache import CachedObject, CacheEvent

RBAC = "rbac.authorization.k8s.io"
SECRETS = {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}
PODS = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}


class _Cache:
    def __init__(self):
        self.listeners = []

    def add_listener(self, fn):
        self.listeners.append(fn)

    def list(self, prefix):
        return []

    def put(self, kind, obj):
        meta = obj["metadata"]
        key = f"/registry/{RBAC}/{kind}/" + "/".join(x for x in (meta.get("namespace"), meta["name"]) if x)
        for fn in self.listeners:
            fn(CacheEvent("ADDED", 1, key, CachedObject(key, obj, orjson.dumps(obj), 1), None))


def _role(rules, **meta):
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role",
            "metadata": {"name": "held", "namespace": "team", "uid": "u1", "resourceVersion": "5", **meta},
            "rules": rules}


def _binding(subjects, **meta):
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "team", "uid": "u2", "resourceVersion": "7", **meta},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "secret-reader"}, "subjects": subjects}


@pytest.fixture
def world():
    cache = _Cache()
    authz = Authorizer(cache)  # type: ignore[arg-type]
    # alice may update roles and rolebindings in `team`, and read pods; not secrets, no escalate, no bind.
    cache.put("roles", {"metadata": {"name": "rbac-updater", "namespace": "team"}, "rules": [
        {"verbs": ["get", "update", "patch"], "apiGroups": [RBAC], "resources": ["roles", "rolebindings"]}, PODS]})
    cache.put("rolebindings", {"metadata": {"name": "alice", "namespace": "team"},
                               "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "rbac-updater"},
                               "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "alice"}]})
    cache.put("clusterroles", {"metadata": {"name": "secret-reader"}, "rules": [SECRETS]})
    infos = {i.plural: i for i in builtin_resources() if i.group == RBAC}
    return authz, infos, Requester("alice", groups=("system:authenticated",))


def test_only_owner_references_and_finalizers_count_as_gc_changes():
    old = _role([SECRETS])
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/keep"]
    new["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "x"}]
    new["metadata"]["managedFields"] = [{"manager": "kubectl-patch", "operation": "Update"}]
    new["metadata"]["resourceVersion"] = ""
    assert only_gc_fields_changed(new, old)
    for change in ({"labels": {"a": "b"}}, {"annotations": {"a": "b"}}, {"name": "other"}):
        changed = copy.deepcopy(new)
        changed["metadata"].update(change)
        assert not only_gc_fields_changed(changed, old), change
    assert not only_gc_fields_changed({**new, "rules": [SECRETS, PODS]}, old)
    assert not only_gc_fields_changed({**new, "rules": []}, old)


def test_finalizing_a_role_with_rules_the_writer_lacks_is_allowed(world):
    authz, infos, alice = world
    stored = _role([SECRETS])
    finalized = copy.deepcopy(stored)
    finalized["metadata"]["finalizers"] = ["example.com/keep"]
    authz.check_escalation(infos["roles"], finalized, alice, stored)
    # ... and removing it again.
    authz.check_escalation(infos["roles"], stored, alice, finalized)


def test_changing_a_roles_rules_or_labels_is_still_checked(world):
    authz, infos, alice = world
    stored = _role([PODS])
    with pytest.raises(ApiError) as e:
        authz.check_escalation(infos["roles"], _role([PODS, SECRETS]), alice, stored)
    assert e.value.code == 403 and e.value.message.startswith(
        f'roles.{RBAC} "held" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to '
        "grant RBAC permissions not currently held:")
    # Upstream compares everything but the GC's fields: a label on a Role holding more than
    # the writer is still an update of that Role, checked as one.
    over = _role([SECRETS])
    with pytest.raises(ApiError):
        authz.check_escalation(infos["roles"], _role([SECRETS], labels={"x": "y"}), alice, over)
    # Without an old object (a create) the check runs as before.
    with pytest.raises(ApiError):
        authz.check_escalation(infos["roles"], _role([SECRETS]), alice, None)


def test_bindings_follow_the_same_rule(world):
    authz, infos, alice = world
    bob = [{"kind": "User", "apiGroup": RBAC, "name": "bob"}]
    stored = _binding(bob)
    owned = _binding(bob, ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "x"}])
    authz.check_escalation(infos["rolebindings"], owned, alice, stored)
    carol = [*bob, {"kind": "User", "apiGroup": RBAC, "name": "carol"}]
    with pytest.raises(ApiError) as e:
        authz.check_escalation(infos["rolebindings"], _binding(carol), alice, stored)
    assert e.value.message.startswith(f'rolebindings.{RBAC} "b" is forbidden: user "alice"')
