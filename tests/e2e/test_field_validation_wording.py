"""`fieldValidation=Strict|Warn` answers worded as kube-apiserver words them: clients (and
Kubernetes' conformance specs, test/e2e/apimachinery/field_validation.go) match the text.
Typed JSON and YAML bodies, patches, server-side apply, custom resources with and without
a schema, embedded objects; with kubectl and raw requests."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request

import pytest
import yaml

NS = "fv-wording"
DEPLOYS = f"/apis/apps/v1/namespaces/{NS}/deployments"

# The typed body of Kubernetes' integration test: unknown fields, duplicates, both.
INVALID_JSON = """{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "%s", "labels": {"app": "nginx"}},
  "spec": {
    "unknown1": "val1", "unknownDupe": "valDupe", "unknownDupe": "valDupe2",
    "paused": true, "paused": false,
    "selector": {"matchLabels": {"app": "nginx"}},
    "template": {"metadata": {"labels": {"app": "nginx"}},
      "spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "unknownNested": "val1",
                               "imagePullPolicy": "Always", "imagePullPolicy": "Never"}]}}}}"""
INVALID_JSON_ERRORS = [
    'unknown field "spec.unknown1"', 'unknown field "spec.unknownDupe"', 'duplicate field "spec.paused"',
    'unknown field "spec.template.spec.containers[0].unknownNested"',
    'duplicate field "spec.template.spec.containers[0].imagePullPolicy"']

INVALID_YAML = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  labels:
    app: nginx
spec:
  unknown1: val1
  unknownDupe: valDupe
  unknownDupe: valDupe2
  paused: true
  paused: false
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:latest
        unknownNested: val1
        imagePullPolicy: Always
        imagePullPolicy: Never"""
INVALID_YAML_WARNINGS = [
    'line 10: key "unknownDupe" already set in map', 'line 12: key "paused" already set in map',
    'line 26: key "imagePullPolicy" already set in map',
    'unknown field "spec.template.spec.containers[0].unknownNested"', 'unknown field "spec.unknown1"',
    'unknown field "spec.unknownDupe"']

VALID = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "NAME", "labels": {"app": "nginx"}},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "nginx"}},
                  "template": {"metadata": {"labels": {"app": "nginx"}},
                               "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}}

PORTS_SCHEMA = {"type": "array", "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-list-type": "map",
                "items": {"type": "object", "required": ["containerPort", "protocol"], "properties": {
                    "containerPort": {"type": "integer", "format": "int32"}, "hostIP": {"type": "string"},
                    "hostPort": {"type": "integer", "format": "int32"}, "name": {"type": "string"},
                    "protocol": {"type": "string"}}}}
CRON = {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"}


def request(server, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
    """(status, warnings, raw body) of one request as the admin."""
    token = open(server.data_dir + "/pki/admin.token").read().strip()
    ctx = ssl.create_default_context(cafile=server.data_dir + "/pki/ca.crt")
    req = urllib.request.Request(server.url + path, data=body, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, warnings_of(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, warnings_of(e.headers), e.read()


def warnings_of(headers) -> list[str]:
    out = []
    for h in headers.get_all("Warning") or []:
        out += [json.loads(f'"{m}"') for m in re.findall(r'299 - "((?:[^"\\]|\\.)*)"', h)]
    return out


@pytest.fixture(scope="module")
def ns(kubectl):
    kubectl.ok("create", "namespace", NS)
    yield NS
    kubectl("delete", "namespace", NS, "--wait=false")


def crd(kubectl, group: str, spec_schema: dict | None) -> str:
    """A cluster-scoped CRD `noxus.<group>` (as the conformance fixture makes), established."""
    version: dict = {"name": "v1", "served": True, "storage": True}
    version["schema"] = {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}
                         if spec_schema else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"noxus.{group}"},
        "spec": {"group": group, "scope": "Cluster", "versions": [version],
                 "names": {"plural": "noxus", "singular": "noxu", "kind": "WishIHadChosenNoxu",
                           "listKind": "NoxuItemList"}}}))
    kubectl.ok("wait", "--for=condition=Established", f"crd/noxus.{group}", "--timeout=30s")
    return f"/apis/{group}/v1/noxus"


def apply_cr(server, path: str, body: str):
    return request(server, "PATCH", f"{path}/mytest?fieldManager=field_validation_mgr&fieldValidation=Strict",
                   body.encode(), "application/apply-patch+yaml")


# -- typed objects ---------------------------------------------------------------------------


def test_unknown_and_duplicate_fields_of_a_typed_object(server, ns):
    body = json.loads(json.dumps(VALID))
    text = json.dumps(body).replace('"replicas": 0', '"unknownField": "foo", "replicas": 2, "replicas": 3')
    status, _, raw = request(server, "POST", DEPLOYS + "?fieldManager=field_validation_mgr&fieldValidation=Strict",
                             text.replace("NAME", "my-dep").encode())
    st = json.loads(raw)
    assert (status, st["reason"]) == (400, "BadRequest")
    assert st["message"] == ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
                             'unknown field "spec.unknownField", duplicate field "spec.replicas"')


def test_unknown_metadata_fields_of_a_typed_object(server, ns):
    text = json.dumps(VALID).replace('"name": "NAME"', '"name": "my-dep", "unknownMeta": "foo"')
    status, _, raw = request(server, "POST", DEPLOYS + "?fieldValidation=Strict", text.encode())
    assert status == 400 and 'strict decoding error: unknown field "metadata.unknownMeta"' in json.loads(raw)["message"]


def test_json_body_errors_and_warnings_come_in_decoding_order(server, ns):
    status, _, raw = request(server, "POST", DEPLOYS + "?fieldValidation=Strict", (INVALID_JSON % "d-json").encode())
    assert status == 400
    assert json.loads(raw)["message"].endswith("strict decoding error: " + ", ".join(INVALID_JSON_ERRORS))
    status, warnings, raw = request(server, "POST", DEPLOYS + "?fieldValidation=Warn",
                                    (INVALID_JSON % "d-json").encode())
    assert status == 201, raw
    assert warnings == INVALID_JSON_ERRORS
    # Warn is the default; Ignore says nothing.
    status, warnings, _ = request(server, "POST", DEPLOYS, (INVALID_JSON % "d-json-default").encode())
    assert status == 201 and warnings == INVALID_JSON_ERRORS
    status, warnings, _ = request(server, "POST", DEPLOYS + "?fieldValidation=Ignore",
                                  (INVALID_JSON % "d-json-ignore").encode())
    assert status == 201 and warnings == []


def test_yaml_body_reports_the_yaml_library_duplicates_then_unknown_fields(server, ns):
    status, _, raw = request(server, "POST", DEPLOYS + "?fieldValidation=Strict", (INVALID_YAML % "d-yaml").encode(),
                             "application/yaml")
    assert status == 400
    assert json.loads(raw)["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'yaml: unmarshal errors:\n  line 10: key "unknownDupe" already set in map\n'
        '  line 12: key "paused" already set in map\n  line 26: key "imagePullPolicy" already set in map, '
        'unknown field "spec.template.spec.containers[0].unknownNested", unknown field "spec.unknown1", '
        'unknown field "spec.unknownDupe"')
    status, warnings, _ = request(server, "POST", DEPLOYS + "?fieldValidation=Warn", (INVALID_YAML % "d-yaml").encode(),
                                  "application/yaml")
    assert status == 201 and warnings == INVALID_YAML_WARNINGS


def test_a_patch_with_unknown_fields_is_invalid_on_the_patch_field(server, ns):
    request(server, "POST", DEPLOYS, json.dumps(VALID).replace("NAME", "d-patch").encode())
    status, _, raw = request(server, "PATCH", DEPLOYS + "/d-patch?fieldValidation=Strict",
                             b'{"spec":{"foo":"bar"}}', "application/strategic-merge-patch+json")
    st = json.loads(raw)
    assert (status, st["reason"]) == (422, "Invalid")
    assert st["message"] == (' "" is invalid: patch: Invalid value: "map[spec:map[foo:bar]]": '
                             'strict decoding error: unknown field "spec.foo"')
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "patch", "message":
                                        'Invalid value: "map[spec:map[foo:bar]]": strict decoding error: '
                                        'unknown field "spec.foo"'}]
    status, _, raw = request(server, "PATCH", DEPLOYS + "/d-patch?fieldValidation=Strict",
                             b'{"spec":{"foo":"bar","paused":true,"paused":false}}', "application/merge-patch+json")
    message = json.loads(raw)["message"]
    assert status == 422 and message.startswith(' "" is invalid: patch: Invalid value: "{')
    assert message.endswith('strict decoding error: duplicate field "spec.paused", unknown field "spec.foo"')
    status, warnings, _ = request(server, "PATCH", DEPLOYS + "/d-patch?fieldValidation=Warn",
                                  b'{"spec":{"foo":"bar"}}', "application/merge-patch+json")
    assert status == 200 and warnings == ['unknown field "spec.foo"']


def test_server_side_apply_words_unknown_and_duplicate_fields_as_upstream(server, ns):
    path = DEPLOYS + "/d-apply?fieldManager=m&fieldValidation=Strict"
    body = yaml.safe_dump({**VALID, "metadata": {"name": "d-apply"}})
    with_unknown = body.replace("  replicas: 0\n", "  replicas: 0\n  foo: bar\n")
    assert with_unknown != body
    status, _, raw = request(server, "PATCH", path, with_unknown.encode(), "application/apply-patch+yaml")
    st = json.loads(raw)
    assert status == 500 and "reason" not in st, st
    assert st["message"] == (f"failed to create typed patch object ({NS}/d-apply; apps/v1, Kind=Deployment): "
                             ".spec.foo: field not declared in schema")
    in_container = body.replace("      - image: nginx:latest\n", "      - image: nginx:latest\n        bar: 1\n")
    assert in_container != body
    status, _, raw = request(server, "PATCH", path, in_container.encode(), "application/apply-patch+yaml")
    assert status == 500
    assert json.loads(raw)["message"].endswith(
        '.spec.template.spec.containers[name="nginx"].bar: field not declared in schema')
    lines = body.splitlines()
    at = lines.index("  replicas: 0") + 1
    twice = "\n".join([*lines[:at], "  replicas: 1", *lines[at:]]) + "\n"
    status, _, raw = request(server, "PATCH", path, twice.encode(), "application/apply-patch+yaml")
    assert status == 400
    assert json.loads(raw)["message"] == ('error strict decoding YAML: error converting YAML to JSON: '
                                          f'yaml: unmarshal errors:\n  line {at + 1}: key "replicas" already set in map')
    assert request(server, "GET", DEPLOYS + "/d-apply")[0] == 404
    # The schema error does not depend on the validation mode.
    for mode in ("Warn", "Ignore"):
        status, _, raw = request(server, "PATCH", DEPLOYS + f"/d-apply?fieldManager=m&fieldValidation={mode}",
                                 with_unknown.encode(), "application/apply-patch+yaml")
        assert status == 500 and ".spec.foo: field not declared in schema" in json.loads(raw)["message"]
    status, warnings, _ = request(server, "PATCH", DEPLOYS + "/d-apply?fieldManager=m&fieldValidation=Warn",
                                  twice.encode(), "application/apply-patch+yaml")
    assert status == 201 and warnings == [f'line {at + 1}: key "replicas" already set in map']


# -- custom resources (the conformance specs) ----------------------------------------------


CR_BODY = """
apiVersion: %s/v1
kind: WishIHadChosenNoxu
metadata:
  name: mytest
  finalizers:
  - test-finalizer
%s"""


def _cleanup_cr(server, kubectl, path: str, group: str) -> None:
    request(server, "PATCH", path + "/mytest", b'{"metadata":{"finalizers":null}}', "application/merge-patch+json")
    kubectl("delete", "crd", f"noxus.{group}", "--wait=false")


def test_a_valid_cr_applies_under_strict(server, kubectl):
    group = "valid.fv.example.com"
    path = crd(kubectl, group, {"type": "object", "properties": {
        "foo": {"type": "string"}, "cronSpec": CRON, "ports": PORTS_SCHEMA}})
    try:
        status, _, raw = apply_cr(server, path, CR_BODY % (group, 'spec:\n  foo: foo1\n  cronSpec: "* * * * */5"\n'
                                                                   "  ports:\n  - name: x\n    containerPort: 80\n"
                                                                   "    protocol: TCP"))
        assert status == 201, raw
    finally:
        _cleanup_cr(server, kubectl, path, group)


def test_a_cr_without_schema_keeps_unknown_fields_under_strict(server, kubectl):
    group = "noschema.fv.example.com"
    path = crd(kubectl, group, None)
    try:
        status, _, raw = apply_cr(server, path, CR_BODY % (group, "spec:\n  unknown: uk1\n"))
        assert status == 201, raw
        assert json.loads(raw)["spec"] == {"unknown": "uk1"}
    finally:
        _cleanup_cr(server, kubectl, path, group)


def test_a_cr_with_extra_properties_is_refused_by_apply(server, kubectl):
    group = "extra.fv.example.com"
    path = crd(kubectl, group, {"type": "object", "properties": {"foo": {"type": "string"}, "cronSpec": CRON}})
    try:
        status, _, raw = apply_cr(server, path, CR_BODY % (group, "unknownField: unknown\nspec:\n  foo: foo1\n"))
        assert status >= 400 and ".unknownField: field not declared in schema" in raw.decode()
    finally:
        _cleanup_cr(server, kubectl, path, group)


def test_unknown_metadata_of_a_cr_and_of_its_embedded_object(server, kubectl):
    group = "embedded.fv.example.com"
    path = crd(kubectl, group, {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": {"type": "object"}}},
        "foo": {"type": "string"}}})
    try:
        body = CR_BODY.replace("  name: mytest\n", "  name: mytest\n  unknownMeta: unknown\n") % (
            group, "spec:\n  template:\n    apiVersion: foo/v1\n    kind: Sub\n    metadata:\n"
                   "      unknownSubMeta: unknown\n      name: subobject\n  foo: foo1\n")
        status, _, raw = apply_cr(server, path, body)
        text = raw.decode()
        assert status >= 400
        assert (".spec.template.metadata.unknownSubMeta: field not declared in schema" in text
                or ".metadata.unknownMeta: field not declared in schema" in text), text
    finally:
        _cleanup_cr(server, kubectl, path, group)


def test_duplicates_in_a_cr_preserving_unknown_fields(server, kubectl):
    group = "dupes.fv.example.com"
    path = crd(kubectl, group, {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                "properties": {"foo": {"type": "string"}, "cronSpec": CRON}})
    try:
        status, _, raw = apply_cr(server, path, CR_BODY % (group, "spec:\n  unknown: uk1\n  foo: foo1\n  foo: foo2\n"))
        assert status == 400
        # The conformance spec matches the raw JSON text of the answer.
        assert 'line 11: key \\"foo\\" already set in map' in raw.decode(), raw
    finally:
        _cleanup_cr(server, kubectl, path, group)


def test_a_cr_post_lists_duplicates_then_pruned_fields(server, kubectl):
    group = "post.fv.example.com"
    path = crd(kubectl, group, {"type": "object", "properties": {"knownField1": {"type": "string"}}})
    try:
        body = (f'{{"apiVersion":"{group}/v1","kind":"WishIHadChosenNoxu","metadata":{{"name":"mytest"}},'
                '"spec":{"unknown1":"a","knownField1":"b","knownField1":"c","unknownDupe":"d","unknownDupe":"e"}}')
        status, _, raw = request(server, "POST", path + "?fieldValidation=Strict", body.encode())
        assert status == 400
        assert json.loads(raw)["message"].endswith(
            'strict decoding error: duplicate field "spec.knownField1", duplicate field "spec.unknownDupe", '
            'unknown field "spec.unknown1", unknown field "spec.unknownDupe"')
    finally:
        _cleanup_cr(server, kubectl, path, group)


# -- kubectl -------------------------------------------------------------------------------


def _manifest(name: str, **spec_extra) -> str:
    obj = json.loads(json.dumps(VALID))
    obj["metadata"]["name"] = name
    obj["spec"].update(spec_extra)
    return yaml.safe_dump(obj)


def test_kubectl_create_validate_strict_and_warn(kubectl, ns):
    r = kubectl("-n", NS, "create", "--validate=strict", "-f", "-", stdin=_manifest("k-strict", foo="bar"))
    assert r.returncode != 0
    assert ('Error from server (BadRequest): error when creating "STDIN": Deployment in version "v1" cannot be '
            'handled as a Deployment: strict decoding error: unknown field "spec.foo"') in r.stderr, r.stderr
    r = kubectl("-n", NS, "create", "--validate=warn", "-f", "-", stdin=_manifest("k-warn", foo="bar"))
    assert r.returncode == 0, r.stderr
    assert 'Warning: unknown field "spec.foo"' in r.stderr


def test_kubectl_apply_validate_strict_on_an_existing_object(kubectl, ns):
    kubectl.ok("-n", NS, "apply", "-f", "-", stdin=_manifest("k-apply"))
    r = kubectl("-n", NS, "apply", "--validate=strict", "-f", "-", stdin=_manifest("k-apply", foo="bar"))
    assert r.returncode != 0
    assert 'strict decoding error: unknown field "spec.foo"' in r.stderr, r.stderr
    r = kubectl("-n", NS, "apply", "--server-side", "--validate=strict", "-f", "-",
                stdin=_manifest("k-apply", foo="bar"))
    assert r.returncode != 0
    assert (f"failed to create typed patch object ({NS}/k-apply; apps/v1, Kind=Deployment): "
            ".spec.foo: field not declared in schema") in r.stderr, r.stderr
