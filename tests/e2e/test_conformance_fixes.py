"""Objects Kubernetes' conformance specs create, applied with real kubectl: a StatefulSet
mounting its claim template's volume, a ResourceQuota with standard quota names, and a CRD
whose kind is lower-case with dashes."""

from __future__ import annotations

import json
import textwrap
import time

STATEFULSET = textwrap.dedent("""
    apiVersion: apps/v1
    kind: StatefulSet
    metadata:
      name: hb-claims
    spec:
      serviceName: hb-claims
      replicas: 0
      selector:
        matchLabels: {app: hb-claims}
      template:
        metadata:
          labels: {app: hb-claims}
        spec:
          containers:
          - name: db
            image: busybox
            volumeMounts:
            - name: data
              mountPath: /data
      volumeClaimTemplates:
      - metadata:
          name: data
        spec:
          accessModes: [ReadWriteOnce]
          resources:
            requests:
              storage: 1Gi
    """)

QUOTA = textwrap.dedent("""
    apiVersion: v1
    kind: ResourceQuota
    metadata:
      name: hb-quota
    spec:
      hard:
        requests.cpu: "1"
        limits.memory: 2Gi
        count/deployments.apps: "3"
    """)

CRD = textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: e2e-test-crd-hbs.hb.example.com
    spec:
      group: hb.example.com
      scope: Namespaced
      names:
        plural: e2e-test-crd-hbs
        singular: e2e-test-crd-hb
        kind: e2e-test-crd-publish-openapi-986-crd
        listKind: e2e-test-crd-publish-openapi-986-crdList
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            x-kubernetes-preserve-unknown-fields: true
    """)


def test_statefulset_mounting_its_claim_template_is_created(kubectl):
    try:
        kubectl.ok("apply", "-f", "-", stdin=STATEFULSET)
        sts = json.loads(kubectl.ok("get", "statefulset", "hb-claims", "-o", "json"))
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    finally:
        kubectl("delete", "statefulset", "hb-claims", "--ignore-not-found")


def test_resourcequota_with_standard_quota_names_is_created_and_listed(kubectl):
    try:
        kubectl.ok("apply", "-f", "-", stdin=QUOTA)
        listed = kubectl.ok("get", "resourcequota")
        assert "hb-quota" in listed
        hard = json.loads(kubectl.ok("get", "resourcequota", "hb-quota", "-o", "json"))["spec"]["hard"]
        assert set(hard) == {"requests.cpu", "limits.memory", "count/deployments.apps"}
    finally:
        kubectl("delete", "resourcequota", "hb-quota", "--ignore-not-found")


def test_crd_with_a_dashed_lower_case_kind_is_served(kubectl):
    try:
        kubectl.ok("apply", "-f", "-", stdin=CRD)
        deadline = time.monotonic() + 30
        served: list[dict] = []
        while time.monotonic() < deadline:
            r = kubectl("get", "--raw", "/apis/hb.example.com/v1")
            if r.returncode == 0:
                served = json.loads(r.stdout)["resources"]
                if served:
                    break
            time.sleep(0.3)
        kinds = {res["name"]: res["kind"] for res in served}
        assert kinds.get("e2e-test-crd-hbs") == "e2e-test-crd-publish-openapi-986-crd"
    finally:
        kubectl("delete", "crd", "e2e-test-crd-hbs.hb.example.com", "--ignore-not-found")
