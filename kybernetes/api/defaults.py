"""Defaulting of the built-in kinds, as the Kubernetes API server does it on decode.

`apply_defaults` fills the fields a client may leave out, in place, so that what
is stored and returned looks like what a real cluster stores (the values follow
the `SetDefaults_*` functions of Kubernetes 1.37, plus the few fields that real
admission plugins always set on pods, such as `priority`). Each kind's defaults
live in its strategy (`kybernetes.api.kinds`); this module keeps what several
kinds share (pod specs, containers, volumes, pod templates) and the `default`
values of a CRD's structural schema for custom resources.

Every function here is pure apart from mutating the object it is given.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api.podfields import drop_disabled_fields
from kybernetes.api.registry import ResourceInfo

Obj = dict[str, Any]


def child_map(parent: Obj, key: str) -> Obj:
    """`parent[key]` as a dict, created when absent or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def as_map(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def is_unset(obj: Obj, key: str) -> bool:
    # Go's zero values ("" and nil) count as unset; an explicit 0 or false does not.
    return obj.get(key) in (None, "")


def set_default(obj: Obj, key: str, value: Any) -> None:
    if is_unset(obj, key):
        obj[key] = value


# -- images ---------------------------------------------------------------------------


def image_tag(image: str) -> str:
    """The tag of an image reference ('' when it has none or is pinned only by digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def default_pull_policy(image: str) -> str:
    # An untagged reference means :latest, which may move, so it is pulled every time.
    tag = image_tag(image)
    if not image or ("@" in image and not tag):
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


# -- pod spec -------------------------------------------------------------------------


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        set_default(action, "path", "/")
        set_default(action, "scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))


def _default_field_ref(holder: Any) -> None:
    if isinstance(holder, dict) and isinstance(holder.get("fieldRef"), dict):
        set_default(holder["fieldRef"], "apiVersion", "v1")


def default_container(c: Obj) -> None:
    if is_unset(c, "imagePullPolicy"):
        c["imagePullPolicy"] = default_pull_policy(str(c.get("image") or ""))
    set_default(c, "terminationMessagePath", "/dev/termination-log")
    set_default(c, "terminationMessagePolicy", "File")
    # ResourceRequirements is a value (not a pointer) in Go, so it is always serialized.
    if not isinstance(c.get("resources"), dict):
        c["resources"] = {}
    for port in dicts(c.get("ports")):
        set_default(port, "protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _default_http_get(lifecycle[hook].get("httpGet"))
    for env in dicts(c.get("env")):
        _default_field_ref(env.get("valueFrom"))


_VOLUME_SOURCES_WITH_MODE = ("configMap", "secret", "downwardAPI", "projected")


def default_volume(v: Obj) -> None:
    sources = [k for k in v if k != "name" and v.get(k) is not None]
    if not sources:
        v["emptyDir"] = {}
    for key in _VOLUME_SOURCES_WITH_MODE:
        src = v.get(key)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = 420
    host_path = v.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    downward = v.get("downwardAPI")
    if isinstance(downward, dict):
        for item in dicts(downward.get("items")):
            _default_field_ref(item)
    projected = v.get("projected")
    if isinstance(projected, dict):
        for source in dicts(projected.get("sources")):
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600
            if isinstance(source.get("downwardAPI"), dict):
                for item in dicts(source["downwardAPI"].get("items")):
                    _default_field_ref(item)
    ephemeral = v.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        claim_spec = ephemeral["volumeClaimTemplate"].get("spec")
        if isinstance(claim_spec, dict):
            set_default(claim_spec, "volumeMode", "Filesystem")


def default_pod_spec(spec: Obj, restart_policy: str | None = "Always") -> None:
    """Defaults shared by pods and every pod template.

    `restart_policy` is None for Job templates: a Job must say OnFailure or Never itself.
    """
    set_default(spec, "dnsPolicy", "ClusterFirst")
    if restart_policy is not None:
        set_default(spec, "restartPolicy", restart_policy)
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    set_default(spec, "schedulerName", "default-scheduler")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in dicts(spec.get(key)):
            default_container(c)
    for v in dicts(spec.get("volumes")):
        default_volume(v)


def default_template(holder: Obj, restart_policy: str | None = "Always") -> None:
    template = holder.get("template")
    if isinstance(template, dict):
        default_pod_spec(child_map(template, "spec"), restart_policy)
        # As upstream's DropDisabledTemplateFields: a template never holds what its pods could not.
        drop_disabled_fields(template["spec"])


# -- custom resources -----------------------------------------------------------------


def apply_schema_defaults(schema: Any, value: Any) -> None:
    """Fill `default`s of a structural schema into `value`, in place, like CR defaulting."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    apply_schema_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = props if isinstance(props, dict) else {}
            for key, item in value.items():
                if key not in known:
                    apply_schema_defaults(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_schema_defaults(schema["items"], item)


def apply_defaults(info: ResourceInfo, obj: dict) -> None:
    """Default `obj` (a decoded object of kind `info`) in place, by the kind's strategy
    with the default configuration (`kinds.DEFAULT`)."""
    from kybernetes.api.kinds import DEFAULT

    DEFAULT.for_info(info).default(info, obj)
