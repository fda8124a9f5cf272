"""CRD validation rules (`x-kubernetes-validations`): compiled with the CRD, evaluated
on each custom object at every schema depth, worded as kube-apiserver words them.

A rule sees `self` (the value at its schema node) and, when it names `oldSelf`, is a
transition rule: evaluated on update only, where the old object has a value at the same
place (object properties and map entries by key, list items of `x-kubernetes-list-type:
map` by their keys). Errors: `spec: Invalid value: "object": MESSAGE` (the value shown
is the node's schema type; `<nil>` for a rule at the root), `failed rule: RULE` without a
message, `ERROR evaluating rule: MESSAGE-or-RULE` when evaluation fails; `reason` picks
Forbidden / Required / Duplicate, `fieldPath` points below the node.

`optionalOldSelf: true` rules also run where there is no old value (on create, or a
new field), with oldSelf `optional.none()`. Not provided: ratcheting
of unchanged values, and the static cost estimate (evaluation is bounded by the
runtime's budget, see kybernetes.api.cel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api import cel
from kybernetes.api.errors import FieldError, invalid
from kybernetes.api.validation import GoValue, go_quote

Obj = dict[str, Any]
_OLD_SELF = re.compile(r"\boldSelf\b")
_REASONS = {"FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate", "FieldValueInvalid"}


@dataclass(frozen=True)
class Rule:
    program: cel.Program
    message: str
    message_program: cel.Program | None
    reason: str
    field_path: str
    transition: bool
    # optionalOldSelf: also run where there is no old value, oldSelf then optional.none()
    optional: bool = False


@dataclass
class Node:
    """A schema node with rules somewhere at or below it."""

    type: str
    rules: list[Rule] = field(default_factory=list)
    properties: dict[str, Node] = field(default_factory=dict)
    items: Node | None = None
    additional: Node | None = None
    list_keys: tuple[str, ...] = ()


def _env() -> Any:
    return cel.new_env(("self", "oldSelf"))


_OLD_BOX = "kybOldSelfBox"  # [] or [old value]: what an optionalOldSelf rule's oldSelf comes from


def _optional_env() -> Any:
    return cel.new_env(("self", _OLD_BOX))


def _optional_text(rule: str) -> str:
    # oldSelf as an optional, bound around the rule (the bindings extension's cel.bind).
    return (f"cel.bind(oldSelf, size({_OLD_BOX}) > 0 ? optional.of({_OLD_BOX}[0]) : optional.none(), "
            f"{rule})")


def _compile_rule(raw: Obj) -> Rule:
    text = raw.get("rule")
    if not isinstance(text, str) or not text:
        raise cel.CelError("rule is not specified")
    env = _env()
    program = cel.compile_expression(env, text)
    transition = bool(_OLD_SELF.search(text))
    optional = transition and raw.get("optionalOldSelf") is True
    message_expr = raw.get("messageExpression")
    message_program = None
    if isinstance(message_expr, str) and message_expr:
        message_program = cel.compile_expression(_optional_env(), _optional_text(message_expr)) if optional \
            else cel.compile_expression(env, message_expr)
    if optional:
        # Compiled as written for its errors above; run with oldSelf bound as an optional.
        program = cel.Program(text, cel.compile_expression(_optional_env(), _optional_text(text)).expr, "bool")
    return Rule(program, str(raw.get("message") or ""), message_program, str(raw.get("reason") or ""),
                str(raw.get("fieldPath") or ""), transition, optional)


def _build(schema: Any) -> Node | None:
    if not isinstance(schema, dict):
        return None
    node = Node(str(schema.get("type") or "object"))
    for raw in schema.get("x-kubernetes-validations") or []:
        if isinstance(raw, dict):
            try:
                node.rules.append(_compile_rule(raw))
            except cel.CelError:
                continue  # refused when the CRD was written; an old stored CRD keeps the rest
    for name, sub in (schema.get("properties") or {}).items():
        child = _build(sub)
        if child is not None:
            node.properties[name] = child
    node.items = _build(schema.get("items"))
    if isinstance(schema.get("additionalProperties"), dict):
        node.additional = _build(schema["additionalProperties"])
    if schema.get("x-kubernetes-list-type") == "map":
        node.list_keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if node.rules or node.properties or node.items is not None or node.additional is not None:
        return node
    return None


_TREES: dict[int, tuple[Obj, Node | None]] = {}


def rules_of(schema: Obj) -> Node | None:
    """The schema's rules as a tree (None when it has none), compiled once per schema."""
    cached = _TREES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    if len(_TREES) > 256:
        _TREES.clear()
    tree = _build(schema)
    _TREES[id(schema)] = (schema, tree)
    return tree


def schema_rule_errors(path: str, schema: Any) -> list[FieldError]:
    """Rules of a CRD schema that do not compile, as the CRD's validation reports them."""
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        return errs
    for i, raw in enumerate(schema.get("x-kubernetes-validations") or []):
        if not isinstance(raw, dict):
            continue
        rule_path = f"{path}.x-kubernetes-validations[{i}]"
        text = raw.get("rule")
        if not isinstance(text, str) or not text.strip():
            errs.append(FieldError("FieldValueRequired", f"{rule_path}.rule", "rule is not specified"))
            continue
        try:
            cel.compile_expression(_env(), text)
        except cel.CelError as e:
            errs.append(invalid(f"{rule_path}.rule", _shown(raw), str(e)))
        message_expr = raw.get("messageExpression")
        if isinstance(message_expr, str) and message_expr:
            try:
                cel.compile_expression(_env(), message_expr)
            except cel.CelError as e:
                errs.append(invalid(f"{rule_path}.messageExpression", message_expr, f"messageExpression {e}"))
        reason = raw.get("reason")
        if reason and reason not in _REASONS:
            errs.append(FieldError("FieldValueNotSupported", f"{rule_path}.reason",
                                   'supported values: "FieldValueDuplicate", "FieldValueForbidden", '
                                   '"FieldValueInvalid", "FieldValueRequired"', reason, True))
    for name, sub in (schema.get("properties") or {}).items():
        errs += schema_rule_errors(f"{path}.properties[{name}]", sub)
    if isinstance(schema.get("items"), dict):
        errs += schema_rule_errors(f"{path}.items", schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        errs += schema_rule_errors(f"{path}.additionalProperties", schema["additionalProperties"])
    return errs


def _shown(raw: Obj) -> GoValue:
    """A rule as the real server's error shows it (Go's %#v of apiextensions.ValidationRule)."""
    def text(key: str) -> str:
        return go_quote(str(raw.get(key) or ""))
    reason = raw.get("reason")
    optional = raw.get("optionalOldSelf")
    return GoValue(
        f"apiextensions.ValidationRule{{Rule:{text('rule')}, Message:{text('message')}, "
        f"MessageExpression:{text('messageExpression')}, Reason:"
        + (f"(*apiextensions.FieldValueErrorReason)({go_quote(str(reason))})" if reason
           else "(*apiextensions.FieldValueErrorReason)(nil)")
        + f", FieldPath:{text('fieldPath')}, OptionalOldSelf:"
        + (f"(*bool)({str(bool(optional)).lower()})" if optional is not None else "(*bool)(nil)") + "}")


# -- evaluating ----------------------------------------------------------------------------

_MISSING = object()
# What a call judges: a new object (rules without oldSelf, and optionalOldSelf rules with no
# old value); an updated object's rules without oldSelf; an update's transition rules.
CREATE, PLAIN, TRANSITIONS = "create", "plain", "transitions"
_ROOT = "<nil>"  # how upstream shows the root's (nil) field path


def validate(schema: Obj | None, obj: Obj, old: Obj | None, mode: str = CREATE) -> list[FieldError]:
    """Errors of the rules in `schema` for `obj` (and `old` on an update), for `mode`:
    CREATE, PLAIN (an update's rules without oldSelf) or TRANSITIONS (an update's rules
    reading oldSelf)."""
    tree = rules_of(schema) if isinstance(schema, dict) else None
    if tree is None:
        return []
    errs: list[FieldError] = []
    _walk(tree, _root(obj), _MISSING if old is None else _root(old), "", errs, mode)
    return errs


def _root(obj: Obj) -> Obj:
    # Rules at the root see only metadata.name and generateName, as upstream.
    meta = obj.get("metadata") or {}
    out = dict(obj)
    out["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return out


def _walk(node: Node, value: Any, old: Any, path: str, errs: list[FieldError], mode: str) -> None:
    if value is None:
        return
    if node.rules:
        _check(node, value, old, path, errs, mode)
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        for name, child in node.properties.items():
            if name in value:
                _walk(child, value[name], old_map.get(name, _MISSING), _join(path, name), errs, mode)
        if node.additional is not None:
            for key, item in value.items():
                _walk(node.additional, item, old_map.get(key, _MISSING), f"{path}[{key}]", errs, mode)
    elif isinstance(value, list) and node.items is not None:
        olds = _old_items(node, old)
        for i, item in enumerate(value):
            prior = olds.get(_item_key(node, item), _MISSING) if olds else _MISSING
            _walk(node.items, item, prior, f"{path}[{i}]", errs, mode)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _item_key(node: Node, item: Any) -> Any:
    if not node.list_keys or not isinstance(item, dict):
        return None
    return tuple(repr(item.get(k)) for k in node.list_keys)


def _old_items(node: Node, old: Any) -> dict[Any, Any]:
    if not node.list_keys or not isinstance(old, list):
        return {}
    return {_item_key(node, item): item for item in old if isinstance(item, dict)}


def _check(node: Node, value: Any, old: Any, path: str, errs: list[FieldError], mode: str) -> None:
    env = _env()
    bindings: Any = None
    optional_bindings: Any = None
    for rule in node.rules:
        if mode == PLAIN and rule.transition:
            continue
        if mode == TRANSITIONS and not rule.transition:
            continue
        if rule.transition and old is _MISSING and not (rule.optional and mode != PLAIN):
            continue
        try:
            if rule.optional:
                if optional_bindings is None:
                    optional_bindings = cel.activation(_optional_env(), {
                        "self": value, _OLD_BOX: [] if old is _MISSING else [old]})
                current = optional_bindings
            else:
                if bindings is None:
                    bindings = cel.activation(env, {"self": value, "oldSelf": None if old is _MISSING else old})
                current = bindings
        except cel.CelError as e:
            errs.append(invalid(path or _ROOT, node.type, str(e)))
            return
        try:
            passed = cel.evaluate(rule.program, current)
        except cel.CelError as e:
            errs.append(invalid(path or _ROOT, node.type, str(e) if isinstance(e, cel.CostExceeded)
                                else f"{e} evaluating rule: {rule.message or rule.program.text}"))
            continue
        if passed is True:
            continue
        field_path = path
        if rule.field_path:
            field_path = (path + rule.field_path) if rule.field_path.startswith(("[", ".")) and path \
                else _join(path, rule.field_path.lstrip("."))
        errs.append(_error(rule.reason, field_path or _ROOT, node.type, _message(rule, current)))


def _message(rule: Rule, bindings: Any) -> str:
    if rule.message_program is not None:
        try:
            text = cel.evaluate(rule.message_program, bindings)
        except cel.CelError:
            text = None
        if isinstance(text, str) and text.strip():
            return text
    return rule.message or f"failed rule: {rule.program.text}"


def _error(reason: str, path: str, type_name: str, message: str) -> FieldError:
    if reason == "FieldValueForbidden":
        return FieldError("FieldValueForbidden", path, message)
    if reason == "FieldValueRequired":
        return FieldError("FieldValueRequired", path, message)
    if reason == "FieldValueDuplicate":
        return FieldError("FieldValueDuplicate", path, message, type_name, True)
    return invalid(path, type_name, message)
