"""A pod created or updated with a negative terminationGracePeriodSeconds is stored with 1, as
kube-apiserver has done since 1.27 (Kubernetes' 'pod with negative grace period' spec)."""

from __future__ import annotations

import json


def test_a_negative_grace_period_is_stored_as_one(kubectl):
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "neg-grace"},
                "spec": {"terminationGracePeriodSeconds": -1,
                         "containers": [{"name": "c", "image": "busybox:1.35", "command": ["sleep", "3600"]}]}}
    kubectl.ok("create", "-f", "-", stdin=json.dumps(manifest))
    try:
        pod = json.loads(kubectl.ok("get", "pod", "neg-grace", "-o", "json"))
        assert pod["spec"]["terminationGracePeriodSeconds"] == 1
        # An update asking for a negative one again keeps 1.
        pod["spec"]["terminationGracePeriodSeconds"] = -1
        kubectl.ok("replace", "-f", "-", stdin=json.dumps(pod))
        pod = json.loads(kubectl.ok("get", "pod", "neg-grace", "-o", "json"))
        assert pod["spec"]["terminationGracePeriodSeconds"] == 1
    finally:
        kubectl("delete", "pod", "neg-grace", "--wait=false")
