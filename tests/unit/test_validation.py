"""Validation of built-in kinds, structural checks and custom resource schemas."""

from __future__ import annotations

import copy

import pytest

from kybernetes.api.defaults import apply_defaults
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.api.validation import (
    parse_quantity,
    type_error_message,
    type_errors,
    unknown_fields,
    validate,
    validate_custom,
)

REG = Registry()

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def info(group: str, kind: str) -> ResourceInfo:
    for candidate in REG.all():
        if candidate.group == group and candidate.kind == kind:
            return candidate
    raise KeyError(kind)


def messages(errs) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def defaulted(group: str, kind: str, obj: dict) -> dict:
    apply_defaults(info(group, kind), obj)
    return obj


def pod(name: str = "p", **container) -> dict:
    c = {"name": "c", "image": "nginx:1.25", **container}
    return defaulted("", "Pod", {"metadata": {"name": name, "namespace": "default"}, "spec": {"containers": [c]}})


def deployment(labels=None, selector=None) -> dict:
    labels = labels or {"app": "web"}
    return defaulted("apps", "Deployment", {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": selector or {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}})


# -- names and metadata ----------------------------------------------------------------------


def test_valid_objects_have_no_errors():
    assert validate(info("", "Pod"), pod(), None) == []
    assert validate(info("apps", "Deployment"), deployment(), None) == []


def test_bad_pod_name_and_missing_image_match_the_real_message():
    obj = pod("Bad_Name")
    del obj["spec"]["containers"][0]["image"]
    errs = validate(info("", "Pod"), obj, None)
    err = ApiError.invalid("", "Pod", "Bad_Name", errs)
    assert err.code == 422
    assert err.message == (f'Pod "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}, '
                           "spec.containers[0].image: Required value]")
    assert [c["reason"] for c in err.details["causes"]] == ["FieldValueInvalid", "FieldValueRequired"]


def test_namespace_names_are_dns_labels():
    ns = defaulted("", "Namespace", {"metadata": {"name": "a.b"}})
    assert messages(validate(info("", "Namespace"), ns, None)) == [f'metadata.name: Invalid value: "a.b": {LABEL_MSG}']


def test_service_names_are_dns1035_labels():
    svc = defaulted("", "Service", {"metadata": {"name": "1web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}})
    (msg,) = messages(validate(info("", "Service"), svc, None))
    assert msg.startswith('metadata.name: Invalid value: "1web": a DNS-1035 label must consist of')


def test_long_name_reports_length():
    obj = pod("a" * 254)
    assert "metadata.name: Invalid value: \"" + "a" * 254 + "\": must be no more than 253 characters" in messages(
        validate(info("", "Pod"), obj, None))


def test_name_required_and_namespace_scope():
    obj = pod()
    del obj["metadata"]["name"]
    assert "metadata.name: Required value: name or generateName is required" in messages(
        validate(info("", "Pod"), obj, None))
    obj = pod()
    del obj["metadata"]["namespace"]
    assert "metadata.namespace: Required value" in messages(validate(info("", "Pod"), obj, None))
    node = {"metadata": {"name": "n1", "namespace": "default"}}
    assert messages(validate(info("", "Node"), node, None)) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_label_and_annotation_rules():
    obj = pod()
    obj["metadata"]["labels"] = {"bad key!": "ok", "good": "-bad-"}
    obj["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    msgs = messages(validate(info("", "Pod"), obj, None))
    assert any(m.startswith('metadata.labels: Invalid value: "bad key!": name part must consist of') for m in msgs)
    assert any(m.startswith('metadata.labels: Invalid value: "-bad-": a valid label must be an empty string') for m in msgs)
    assert "metadata.annotations: Too long: may not be more than 262144 bytes" in msgs


# -- pods -----------------------------------------------------------------------------------


def test_pod_container_rules():
    obj = pod(ports=[{"containerPort": 70000}], resources={"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})
    obj["spec"]["containers"].append(copy.deepcopy(obj["spec"]["containers"][0]))
    obj["spec"]["restartPolicy"] = "Sometimes"
    msgs = messages(validate(info("", "Pod"), obj, None))
    assert "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive" in msgs
    assert 'spec.containers[1].name: Duplicate value: "c"' in msgs
    assert ('spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
            in msgs)
    assert 'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1' in msgs


def test_pod_requires_containers_and_known_volumes():
    obj = defaulted("", "Pod", {"metadata": {"name": "p", "namespace": "d"}, "spec": {}})
    assert "spec.containers: Required value" in messages(validate(info("", "Pod"), obj, None))
    obj = pod(volumeMounts=[{"name": "missing", "mountPath": "/data"}])
    errs = validate(info("", "Pod"), obj, None)
    assert [(e.type, e.field, e.value) for e in errs] == [
        ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name", "missing")]


def test_pod_update_only_allows_image_changes():
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["activeDeadlineSeconds"] = 60
    assert validate(info("", "Pod"), new, old) == []
    new["spec"]["containers"][0]["ports"] = [{"containerPort": 81, "protocol": "TCP"}]
    (err,) = validate(info("", "Pod"), new, old)
    assert err.field == "spec" and err.type == "FieldValueForbidden"
    assert err.detail.startswith("pod updates may not change fields other than `spec.containers[*].image`")
    assert "spec.containers[0].ports" in err.detail


def test_metadata_name_is_immutable():
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    assert 'metadata.name: Invalid value: "other": field is immutable' in messages(validate(info("", "Pod"), new, old))


# -- workloads ------------------------------------------------------------------------------


def test_selector_must_match_template_labels():
    obj = deployment(labels={"app": "other"})
    assert messages(validate(info("apps", "Deployment"), obj, None)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
        "`selector` does not match template `labels`"]


def test_selector_expressions_are_evaluated():
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}
    ok = deployment(labels={"tier": "fe"}, selector=sel)
    assert validate(info("apps", "Deployment"), ok, None) == []
    bad = deployment(labels={"tier": "db"}, selector=sel)
    assert len(validate(info("apps", "Deployment"), bad, None)) == 1


def test_selector_required_and_immutable():
    obj = deployment()
    del obj["spec"]["selector"]
    assert "spec.selector: Required value" in messages(validate(info("apps", "Deployment"), obj, None))
    old = deployment()
    new = deployment(labels={"app": "x"}, selector={"matchLabels": {"app": "x"}})
    assert messages(validate(info("apps", "Deployment"), new, old)) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]


def test_deployment_strategy_and_replicas():
    obj = deployment()
    obj["spec"]["replicas"] = -1
    obj["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": "0%"}
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    msgs = messages(validate(info("apps", "Deployment"), obj, None))
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in msgs
    assert 'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0' in msgs
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"' in msgs
    obj = deployment()
    obj["spec"]["strategy"] = {"type": "Blue"}
    assert ('spec.strategy.type: Unsupported value: "Blue": supported values: "Recreate", "RollingUpdate"'
            in messages(validate(info("apps", "Deployment"), obj, None)))


def test_job_restart_policy_and_template_immutability():
    job = defaulted("batch", "Job", {"metadata": {"name": "pi", "namespace": "d", "uid": "u1"},
                                     "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}}})
    assert messages(validate(info("batch", "Job"), job, None)) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert validate(info("batch", "Job"), job, None) == []
    changed = copy.deepcopy(job)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5"
    assert [e.field for e in validate(info("batch", "Job"), changed, job)] == ["spec.template"]


def test_cronjob_schedule():
    cj = defaulted("batch", "CronJob", {"metadata": {"name": "c", "namespace": "d"}, "spec": {
        "schedule": "61 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    assert messages(validate(info("batch", "CronJob"), cj, None)) == [
        'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']
    cj["spec"]["schedule"] = "*/5 * * * mon-fri"
    assert validate(info("batch", "CronJob"), cj, None) == []


# -- core kinds -----------------------------------------------------------------------------


def test_service_rules():
    svc = defaulted("", "Service", {"metadata": {"name": "web", "namespace": "d"},
                                    "spec": {"ports": [{"port": 80}, {"port": 0, "name": "b"}], "type": "Weird"}})
    msgs = messages(validate(info("", "Service"), svc, None))
    assert "spec.ports[0].name: Required value" in msgs
    assert "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive" in msgs
    assert ('spec.type: Unsupported value: "Weird": supported values: "ClusterIP", "ExternalName", '
            '"LoadBalancer", "NodePort"') in msgs
    no_ports = defaulted("", "Service", {"metadata": {"name": "web", "namespace": "d"}, "spec": {}})
    assert messages(validate(info("", "Service"), no_ports, None)) == ["spec.ports: Required value"]
    headless = defaulted("", "Service", {"metadata": {"name": "web", "namespace": "d"}, "spec": {"clusterIP": "None"}})
    assert validate(info("", "Service"), headless, None) == []


def test_service_cluster_ip_is_immutable_once_set():
    old = defaulted("", "Service", {"metadata": {"name": "web", "namespace": "d"},
                                    "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}})
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.0.0.6"
    assert 'spec.clusterIP: Invalid value: "10.0.0.6": field is immutable' in messages(
        validate(info("", "Service"), new, old))
    new["spec"]["clusterIP"] = ""
    assert validate(info("", "Service"), new, old) == []


def test_configmap_keys_and_immutability():
    cm = {"metadata": {"name": "c", "namespace": "d"}, "data": {"bad key": "v", "ok.key": "v"}}
    (msg,) = messages(validate(info("", "ConfigMap"), cm, None))
    assert msg == ('data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric '
                   "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                   "validation is '[-._a-zA-Z0-9]+')")
    old = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "1"}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert messages(validate(info("", "ConfigMap"), new, old)) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_secret_size_limit():
    big = "QUFB" * (300 * 1024)  # 900 KiB decoded, twice
    secret = defaulted("", "Secret", {"metadata": {"name": "s", "namespace": "d"}, "data": {"a": big, "b": big}})
    assert messages(validate(info("", "Secret"), secret, None)) == ["data: Too long: may not be more than 1048576 bytes"]


def test_pvc_spec_is_immutable_except_requests():
    old = defaulted("", "PersistentVolumeClaim", {"metadata": {"name": "c", "namespace": "d"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert validate(info("", "PersistentVolumeClaim"), old, None) == []
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    # Only a bound claim may change its request (upstream ValidatePersistentVolumeClaimUpdate).
    assert [e.field for e in validate(info("", "PersistentVolumeClaim"), grown, old)] == ["spec"]
    old["status"] = grown["status"] = {"phase": "Bound"}
    assert validate(info("", "PersistentVolumeClaim"), grown, old) == []
    changed = copy.deepcopy(old)
    changed["spec"]["accessModes"] = ["ReadWriteMany"]
    assert [e.field for e in validate(info("", "PersistentVolumeClaim"), changed, old)] == ["spec"]


def test_event_involved_object_namespace():
    ev = {"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "other"}}
    assert messages(validate(info("", "Event"), ev, None)) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace']


def test_lease_duration_positive():
    lease = {"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}}
    assert messages(validate(info("coordination.k8s.io", "Lease"), lease, None)) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]


def test_rbac_rules_and_role_ref():
    role = {"metadata": {"name": "r", "namespace": "d"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}
    assert messages(validate(info("rbac.authorization.k8s.io", "Role"), role, None)) == [
        "rules[0].verbs: Required value: verbs must contain at least one value"]
    binding = defaulted("rbac.authorization.k8s.io", "RoleBinding", {
        "metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]})
    assert validate(info("rbac.authorization.k8s.io", "RoleBinding"), binding, None) == []
    changed = copy.deepcopy(binding)
    changed["roleRef"]["name"] = "other"
    assert [e.detail for e in validate(info("rbac.authorization.k8s.io", "RoleBinding"), changed, binding)] == [
        "cannot change roleRef"]


def crd(name: str = "widgets.example.com", storage: bool = True, schema: dict | None = None) -> dict:
    version = {"name": "v1", "served": True, "storage": storage}
    if schema is not None:
        version["schema"] = {"openAPIV3Schema": schema}
    return defaulted("apiextensions.k8s.io", "CustomResourceDefinition", {
        "metadata": {"name": name}, "spec": {"group": "example.com", "scope": "Namespaced",
                                             "names": {"plural": "widgets", "kind": "Widget"}, "versions": [version]}})


def test_crd_rules():
    crd_info = info("apiextensions.k8s.io", "CustomResourceDefinition")
    assert validate(crd_info, crd(schema={"type": "object"}), None) == []
    msgs = messages(validate(crd_info, crd(name="widgets", storage=False), None))
    assert msgs == [
        'metadata.name: Invalid value: "widgets": must be spec.names.plural+"."+spec.group',
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
        'spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{"v1"}: '
        "must have exactly one version marked as storage version",
    ]


# -- structure -------------------------------------------------------------------------------


def test_unknown_fields_paths():
    obj = deployment()
    obj["spec"]["bogus"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = "x"
    obj["metadata"]["nope"] = True
    obj["metadata"]["labels"] = {"free": "form"}  # map keys are never unknown
    obj["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:spec": {}}}]  # free-form JSON
    assert unknown_fields(info("apps", "Deployment"), obj) == [
        "metadata.nope", "spec.template.spec.containers[0].imagePolicy", "spec.bogus"]


def test_type_errors_and_decode_message():
    obj = deployment()
    obj["spec"]["replicas"] = "three"
    dep = info("apps", "Deployment")
    assert type_error_message(dep, obj) == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go '
        "struct field DeploymentSpec.spec.replicas of type int32")
    (err,) = type_errors(dep, obj)
    assert (err.field, err.value) == ("spec.replicas", "three")


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("image", 5),
     "json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.image of type string"),
    (lambda o: o["metadata"].__setitem__("labels", {"a": 1}),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
    (lambda o: o["spec"].__setitem__("paused", "yes"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.paused of type bool"),
    (lambda o: o["spec"].__setitem__("replicas", 1.5),
     "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("resources", {"limits": {"cpu": "lots"}}),
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    (lambda o: o["spec"]["strategy"]["rollingUpdate"].__setitem__("maxSurge", True),
     "json: cannot unmarshal bool into Go struct field RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge "
     "of type int32"),
])
def test_type_error_messages(mutate, expected):
    obj = deployment()
    mutate(obj)
    assert type_error_message(info("apps", "Deployment"), obj).endswith(": " + expected)


def test_well_typed_objects_have_no_type_errors():
    obj = deployment()
    obj["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": "10%"}
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 2, "memory": "1Gi"}}
    obj["spec"]["minReadySeconds"] = None
    assert type_errors(info("apps", "Deployment"), obj) == []
    secret = {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}
    assert type_error_message(info("", "Secret"), secret) == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3')


@pytest.mark.parametrize(("text", "value"), [("100m", "0.1"), ("1Gi", str(2 ** 30)), ("1e3", "1000"), ("2", "2")])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == parse_quantity(value)
    assert str(parse_quantity(text).normalize()) == str(parse_quantity(value).normalize())


def test_parse_quantity_rejects_garbage():
    assert parse_quantity("1.2.3") is None
    assert parse_quantity("12Q") is None
    assert parse_quantity(True) is None


# -- custom resources ------------------------------------------------------------------------

WIDGET_SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "integer", "minimum": 1},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "port": {"x-kubernetes-int-or-string": True},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
        "nick": {"type": "string", "nullable": True}}},
    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}


def widget_info() -> ResourceInfo:
    return ResourceInfo("example.com", "v1", "Widget", "widgets", "widget", True, crd_schema=WIDGET_SCHEMA)


def test_custom_resource_schema_errors():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "d"},
           "spec": {"size": "big", "mode": "medium", "port": "http", "tags": ["ok", "NO"], "nick": None}}
    assert messages(validate_custom(widget_info(), obj)) == [
        'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
        'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"',
        "spec.tags[1]: Invalid value: \"NO\": spec.tags[1] in body should match '^[a-z]+$'",
    ]
    obj["spec"] = {"size": 0}
    assert messages(validate_custom(widget_info(), obj)) == [
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]
    obj["spec"] = {}
    assert messages(validate(widget_info(), obj, None)) == ["spec.size: Required value"]


def test_custom_resource_unknown_fields_honour_preserve_unknown():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "bogus": 1},
           "spec": {"size": 1, "extra": {"anything": {"goes": 1}}, "typo": 2}, "status": {"ready": True, "x": 1},
           "top": 1}
    assert unknown_fields(widget_info(), obj) == ["metadata.bogus", "spec.typo", "status.x", "top"]


def test_custom_resource_validator_is_compiled_once():
    from kybernetes.api import validation

    cr = widget_info()
    obj = {"metadata": {"name": "w", "namespace": "d"}, "spec": {"size": 1}}
    validate_custom(cr, obj)
    stripped = validation._without_metadata(WIDGET_SCHEMA)
    compiled = validation._COMPILED[id(stripped)][1]
    validate_custom(cr, obj)
    assert validation._COMPILED[id(stripped)][1] is compiled
