"""CustomResourceDefinitions: validation and defaulting of the CRD object, the status
the real server's CRD controllers keep (accepted names, Established), and the cleanup
finalizer that holds a deleted CRD until its custom resources are gone (the cleanup
itself is I/O: the API server attaches it as a deletion listener)."""

from __future__ import annotations

from typing import Any

from kybernetes.api import celrules
from kybernetes.api.defaults import child_map, set_default
from kybernetes.api.errors import FieldError, invalid, not_supported, required
from kybernetes.api.kinds.base import CreatedAtStrategy, KindRef
from kybernetes.api.names import dns1035_label_errors, dns1123_subdomain_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.timefmt import now_rfc3339
from kybernetes.api.validation import (
    GoValue,
    as_dict,
    compile_schema,
    enum_errors,
    immutable,
    name_errors,
    seen_before,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _mixed_case_label_errors(path: str, value: Any) -> Errors:
    """Kinds are CamelCase by convention, so upstream checks their lower-cased form as a DNS-1035 label."""
    if not isinstance(value, str):
        return []
    msgs = dns1035_label_errors(value.lower())
    if not msgs:
        return []
    return [invalid(path, value, "may have mixed case, but should otherwise match: " + ",".join(msgs))]


def _validate_crd(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: Errors = []
    group = spec.get("group")
    if not group:
        errs.append(required("spec.group"))
    else:
        errs += name_errors(dns1123_subdomain_errors, "spec.group", group)
        if "." not in str(group):
            errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural, kind = names.get("plural"), names.get("kind")
    if not plural:
        errs.append(required("spec.names.plural"))
    else:
        errs += name_errors(dns1035_label_errors, "spec.names.plural", plural)
    if names.get("singular"):
        errs += name_errors(dns1035_label_errors, "spec.names.singular", names["singular"])
    if not kind:
        errs.append(required("spec.names.kind"))
    else:
        errs += _mixed_case_label_errors("spec.names.kind", kind)
    if names.get("listKind"):
        errs += _mixed_case_label_errors("spec.names.listKind", names["listKind"])
    if names.get("listKind") and names.get("listKind") == kind:
        errs.append(invalid("spec.names.listKind", names["listKind"], "kind and listKind may not be the same"))
    name = as_dict(obj.get("metadata")).get("name")
    if plural and group and name != f"{plural}.{group}":
        errs.append(invalid("metadata.name", name or "", 'must be spec.names.plural+"."+spec.group'))
    errs += enum_errors("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"])
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errs.append(invalid("spec.versions", GoValue("[]apiextensions.CustomResourceDefinitionVersion(nil)"),
                            "must have exactly one version marked as storage version"))
        return errs
    seen: set[str] = set()
    storage = 0
    for i, version in enumerate(versions):
        p = f"spec.versions[{i}]"
        if not isinstance(version, dict):
            continue
        vname = version.get("name")
        if not vname:
            errs.append(required(f"{p}.name"))
        else:
            errs += name_errors(dns1035_label_errors, f"{p}.name", vname)
            if seen_before(seen, vname):
                errs.append(invalid(f"{p}.name", vname, "must be unique"))
        if version.get("storage") is True:
            storage += 1
        errs += _validate_crd_schema(f"{p}.schema.openAPIV3Schema",
                                     as_dict(version.get("schema")).get("openAPIV3Schema"))
    if storage != 1:
        shown = GoValue("[]apiextensions.CustomResourceDefinitionVersion{" + ", ".join(
            f'"{v.get("name", "")}"' for v in versions if isinstance(v, dict)) + "}")
        errs.append(invalid("spec.versions", shown, "must have exactly one version marked as storage version"))
    return errs


def _validate_crd_schema(path: str, schema: Any) -> Errors:
    if not isinstance(schema, dict):
        return [required(path, "schemas are required")]
    errs: Errors = []
    root_type = schema.get("type")
    if not root_type:
        errs.append(required(f"{path}.type", "must not be empty at the root"))
    elif root_type != "object":
        errs.append(not_supported(f"{path}.type", root_type, ["object"]))
    try:
        compile_schema(schema, cache=False)
    except (ValueError, TypeError) as e:
        errs.append(invalid(path, GoValue("..."), f"invalid schema: {e}"))
    # CEL rules are compiled with the CRD, so a rule that cannot run is refused now.
    errs += celrules.schema_rule_errors(path, schema)
    return errs


def _validate_crd_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs = immutable("spec.group", new_spec.get("group"), old_spec.get("group"))
    errs += immutable("spec.scope", new_spec.get("scope"), old_spec.get("scope"))
    return errs


def _default_crd(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    names = child_map(spec, "names")
    kind = names.get("kind")
    if isinstance(kind, str) and kind:
        set_default(names, "singular", kind.lower())
        set_default(names, "listKind", kind + "List")
    conversion = child_map(spec, "conversion")
    set_default(conversion, "strategy", "None")
    webhook = conversion.get("webhook")
    if isinstance(webhook, dict):
        service = (webhook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443


CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def accepted_names(spec: Obj) -> Obj:
    names = dict(spec.get("names") or {})
    kind = names.get("kind", "")
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", kind + "List")
    return names


_SERVER_CONDITIONS = ("NamesAccepted", "Established", "Terminating")


def prepare_crd(obj: Obj, old: Obj | None, now: str) -> None:
    """Server-set fields of a CRD: the cleanup finalizer and the status its controllers keep."""
    meta = obj["metadata"]
    if old is None:
        fins = list(meta.get("finalizers") or [])
        if CLEANUP_FINALIZER not in fins:
            fins.append(CLEANUP_FINALIZER)
        meta["finalizers"] = fins
    spec = obj.get("spec") or {}
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    prev = (old or {}).get("status") or {}
    stored = list(prev.get("storedVersions") or [])
    for s in storage:
        if s and s not in stored:
            stored.append(s)
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now},
    ]
    for c in conditions:
        for p in prev.get("conditions") or []:
            if p.get("type") == c["type"] and p.get("status") == c["status"]:
                c["lastTransitionTime"] = p.get("lastTransitionTime", now)
    if meta.get("deletionTimestamp"):
        conditions.append({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                           "message": "CustomResource deletion is in progress", "lastTransitionTime": now})
    # Conditions of other types are someone else's (a status write put them there): kept.
    written = (obj.get("status") or {}).get("conditions") or []
    conditions += [c for c in written if isinstance(c, dict) and c.get("type") not in _SERVER_CONDITIONS]
    obj["status"] = {"acceptedNames": accepted_names(spec), "conditions": conditions, "storedVersions": stored}


# -- strategy -----------------------------------------------------------------------------

CRD = KindRef("apiextensions.k8s.io", "CustomResourceDefinition")


class CustomResourceDefinitionStrategy(CreatedAtStrategy):
    refs = (CRD,)
    # The server writes a CRD's status itself, from the first create on.
    resets_status_on_create = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_crd(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_crd(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_crd_update(new, old)

    def canonicalize(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        prepare_crd(obj, old, now_rfc3339())
