"""kubectl's client-side validation from `/openapi/v2` (gnostic protobuf), on a real
server: `kind: List` files and custom resources in them apply, unknown fields in their
items are reported by kubectl itself, `--validate=false` skips it, and `explain`
(OpenAPI v3) is unaffected."""

from __future__ import annotations

import textwrap
import time
import uuid

import pytest

LIST = textwrap.dedent("""\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: ConfigMap
      metadata:
        name: lcfg
      data:
        a: "{value}"
    - apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: lweb
      spec:
        replicas: 0
        selector:
          matchLabels: {{app: lweb}}
        template:
          metadata:
            labels: {{app: lweb}}
          spec:
            containers:
            - name: web
              image: nginx
    """)

CRD_GROUP = "openapi-v2.example.com"
CRD = textwrap.dedent(f"""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: sprockets.{CRD_GROUP}
    spec:
      group: {CRD_GROUP}
      scope: Namespaced
      names: {{plural: sprockets, singular: sprocket, kind: Sprocket, listKind: SprocketList}}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                description: How the sprocket is cut.
                properties:
                  teeth: {{type: integer}}
                  tags: {{type: array, items: {{type: string}}, x-kubernetes-list-type: set}}
    """)

CR_LIST = textwrap.dedent("""\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: GROUP/v1
      kind: Sprocket
      metadata: {name: s1}
      spec: {teeth: 12, tags: [a, b]EXTRA}
    """).replace("GROUP", CRD_GROUP)


@pytest.fixture
def namespace(kubectl):
    name = "oav2-" + uuid.uuid4().hex[:8]
    kubectl.ok("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def test_apply_a_list_file_creates_then_configures(kubectl, namespace):
    out = kubectl.ok("apply", "-n", namespace, "-f", "-", stdin=LIST.format(value="one"))
    assert "configmap/lcfg created" in out and "deployment.apps/lweb created" in out
    out = kubectl.ok("apply", "-n", namespace, "-f", "-", stdin=LIST.format(value="two"))
    assert "configmap/lcfg configured" in out and "deployment.apps/lweb unchanged" in out
    assert kubectl.ok("get", "-n", namespace, "configmap", "lcfg", "-o", "jsonpath={.data.a}") == "two"
    assert kubectl.ok("get", "-n", namespace, "deployment", "lweb", "-o", "name") == "deployment.apps/lweb\n"


def test_unknown_fields_in_list_items_are_reported_by_kubectl(kubectl, namespace):
    bad = LIST.format(value="one").replace('a: "one"', 'a: "one"\n  bogus: 1')
    r = kubectl("apply", "-n", namespace, "-f", "-", stdin=bad)
    assert r.returncode != 0
    assert 'unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in r.stderr, r.stderr
    assert "error validating data: ValidationError(ConfigMap)" in r.stderr
    assert kubectl("get", "-n", namespace, "configmap", "lcfg").returncode != 0  # nothing was sent

    nested = LIST.format(value="one").replace("replicas: 0", "replicas: 0\n    replicaz: 2")
    r = kubectl("apply", "-n", namespace, "-f", "-", stdin=nested)
    assert r.returncode != 0
    assert 'ValidationError(Deployment.spec): unknown field "replicaz" in io.k8s.api.apps.v1.DeploymentSpec' \
        in r.stderr, r.stderr

    out = kubectl.ok("apply", "--validate=false", "-n", namespace, "-f", "-", stdin=bad)
    assert "configmap/lcfg created" in out
    assert kubectl.ok("get", "-n", namespace, "configmap", "lcfg", "-o", "jsonpath={.data.a}") == "one"


def test_custom_resources_in_a_list_are_validated_from_their_v2_schema(kubectl, namespace):
    kubectl.ok("apply", "-f", "-", stdin=CRD)
    try:
        deadline = time.monotonic() + 30
        while kubectl("get", "-n", namespace, "sprockets").returncode != 0:
            assert time.monotonic() < deadline, "the CRD's resource was never served"
            time.sleep(0.2)
        out = kubectl.ok("apply", "-n", namespace, "-f", "-", stdin=CR_LIST.replace("EXTRA", ""))
        assert f"sprocket.{CRD_GROUP}/s1 created" in out
        r = kubectl("apply", "-n", namespace, "-f", "-", stdin=CR_LIST.replace("EXTRA", ", wobble: true"))
        assert r.returncode != 0
        assert 'unknown field "wobble" in com.example.openapi-v2.v1.Sprocket.spec' in r.stderr, r.stderr
        out = kubectl.ok("explain", "sprockets.spec")
        assert "How the sprocket is cut." in out and "teeth\t<integer>" in out
    finally:
        kubectl("delete", "crd", f"sprockets.{CRD_GROUP}", "--ignore-not-found")


def test_explain_still_reads_v3(kubectl):
    out = kubectl.ok("explain", "deployment.spec.strategy")
    assert "KIND:       Deployment" in out and "FIELD: strategy <DeploymentStrategy>" in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out
