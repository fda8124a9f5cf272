"""CRD `x-kubernetes-validations` (kybernetes.api.celrules): rules at every depth,
transition rules with oldSelf, wording as upstream, and bad rules refused with the CRD."""

from __future__ import annotations

from kybernetes.api import celrules
from kybernetes.api.errors import FieldError

SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object",
             "x-kubernetes-validations": [
                 {"rule": "self.x >= oldSelf.x", "message": "x may not decrease"},
                 {"rule": "self.x <= self.max", "reason": "FieldValueForbidden", "fieldPath": ".x"}],
             "properties": {
                 "x": {"type": "integer"}, "max": {"type": "integer"},
                 "name": {"type": "string", "x-kubernetes-validations": [
                     {"rule": "self == self.lowerAscii()", "messageExpression": "'name ' + self + ' is not lower case'"}]},
                 "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                           "items": {"type": "object", "x-kubernetes-validations": [
                               {"rule": "self.port > 0"}, {"rule": "self.port == oldSelf.port", "message": "immutable"}],
                               "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                 "labels": {"type": "object", "additionalProperties": {
                     "type": "string", "x-kubernetes-validations": [{"rule": "size(self) < 5"}]}}}}}}


def obj(**spec: object) -> dict:
    return {"apiVersion": "x.io/v1", "kind": "Foo", "metadata": {"name": "a"}, "spec": {"x": 1, "max": 10, **spec}}


def messages(errs: list[FieldError]) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def test_create_runs_plain_rules_and_skips_transition_rules() -> None:
    assert celrules.validate(SCHEMA, obj(), None) == []
    assert messages(celrules.validate(SCHEMA, obj(x=20), None)) == [
        "spec.x: Forbidden: failed rule: self.x <= self.max"]
    assert messages(celrules.validate(SCHEMA, obj(name="Web"), None)) == [
        'spec.name: Invalid value: "string": name Web is not lower case']


def test_transition_rule_refuses_an_illegal_change_on_update() -> None:
    assert celrules.validate(SCHEMA, obj(x=2), obj(x=1), mode=celrules.TRANSITIONS) == []
    assert messages(celrules.validate(SCHEMA, obj(x=0), obj(x=1), mode=celrules.TRANSITIONS)) == [
        'spec: Invalid value: "object": x may not decrease']


def test_rules_in_list_items_and_map_values() -> None:
    ports = [{"name": "http", "port": 0}]
    assert messages(celrules.validate(SCHEMA, obj(ports=ports), None)) == [
        'spec.ports[0]: Invalid value: "object": failed rule: self.port > 0']
    new, old = obj(ports=[{"name": "new", "port": 1}, {"name": "http", "port": 2}]), obj(ports=[{"name": "http", "port": 1}])
    # Items correlate by their map keys: only "http" has an old value.
    assert messages(celrules.validate(SCHEMA, new, old, mode=celrules.TRANSITIONS)) == [
        'spec.ports[1]: Invalid value: "object": immutable']
    assert messages(celrules.validate(SCHEMA, obj(labels={"a": "ok", "b": "toolong"}), None)) == [
        'spec.labels[b]: Invalid value: "string": failed rule: size(self) < 5']


def test_bad_rules_are_refused_with_the_crd() -> None:
    bad = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.x >"}, {"rule": "true", "reason": "Nope"}]}}}
    errs = celrules.schema_rule_errors("spec.versions[0].schema.openAPIV3Schema", bad)
    assert [e.field for e in errs] == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].reason"]
    assert errs[0].detail.startswith("compilation failed: ERROR: <input>:1:")
    assert celrules.schema_rule_errors("s", SCHEMA) == []


def test_root_rules_and_evaluation_errors_worded_as_upstream() -> None:
    schema = {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.metadata.name.startsWith('my-')"},
        {"rule": "self.spec.organization == 'x'", "message": "organization is x"}],
        "properties": {"spec": {"type": "object"}}}
    assert messages(celrules.validate(schema, {"metadata": {"name": "other"}, "spec": {}}, None)) == [
        "<nil>: Invalid value: \"object\": failed rule: self.metadata.name.startsWith('my-')",
        '<nil>: Invalid value: "object": no such key: organization evaluating rule: organization is x']


def test_bad_rule_shown_as_upstreams_go_value() -> None:
    bad = {"type": "object", "x-kubernetes-validations": [{"rule": "self == ", "message": "m"}]}
    [err] = celrules.schema_rule_errors("s", bad)
    assert err.message().startswith(
        'Invalid value: apiextensions.ValidationRule{Rule:"self == ", Message:"m", MessageExpression:"", '
        'Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: '
        "compilation failed: ERROR: <input>:1:")


def test_optional_old_self_rules_run_on_create_with_none() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [
        {"rule": "oldSelf.hasValue() || self.x == 0", "optionalOldSelf": True, "message": "starts at zero"},
        {"rule": "!oldSelf.hasValue() || self.x >= oldSelf.value().x", "optionalOldSelf": True,
         "messageExpression": "'was ' + string(oldSelf.value().x)"}],
        "properties": {"x": {"type": "integer"}}}}}
    assert messages(celrules.validate(schema, obj(x=1), None)) == ['spec: Invalid value: "object": starts at zero']
    assert celrules.validate(schema, obj(x=0), None) == []
    assert celrules.validate(schema, obj(x=1), None, celrules.PLAIN) == []  # an update's plain pass skips them
    assert messages(celrules.validate(schema, obj(x=1), obj(x=2), celrules.TRANSITIONS)) == [
        'spec: Invalid value: "object": was 2']
