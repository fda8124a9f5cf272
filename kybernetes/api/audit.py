"""Audit policy and audit events: what kube-apiserver records about each request.

Pure. `parse_policy` reads an `audit.k8s.io/v1` Policy (as kube-apiserver's
`--audit-policy-file`) and refuses what upstream's validation refuses; `PolicyChecker`
gives the level, omitted stages and managed-fields choice of the FIRST matching rule
(upstream's policy checker: users, userGroups, verbs, then resources and namespaces or
nonResourceURLs; no match is level None). The event functions build `audit.k8s.io/v1`
Event dicts field by field as upstream fills them, so a log line reads as a real
kube-apiserver's. Nothing here names a kind: the default policy is data.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kybernetes.api.rbac import Attributes

AUDIT_GROUP_VERSION = "audit.k8s.io/v1"
NONE, METADATA, REQUEST, REQUEST_RESPONSE = "None", "Metadata", "Request", "RequestResponse"
LEVELS = (NONE, METADATA, REQUEST, REQUEST_RESPONSE)
_RANK = {lv: i for i, lv in enumerate(LEVELS)}
REQUEST_RECEIVED, RESPONSE_STARTED, RESPONSE_COMPLETE, PANIC = (
    "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
STAGES = (REQUEST_RECEIVED, RESPONSE_STARTED, RESPONSE_COMPLETE, PANIC)
# Versions kube-apiserver has read policies in; v1 is the only one served since 1.24,
# older files still name the others and mean the same fields.
_POLICY_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")
# upstream's BasicLongRunningRequestCheck for kube-apiserver: these get a ResponseStarted event.
_LONG_RUNNING_VERBS = frozenset(("watch", "proxy"))
_LONG_RUNNING_SUBRESOURCES = frozenset(("attach", "exec", "proxy", "log", "portforward"))
MAX_USER_AGENT = 1024
DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"

# `kyb server`'s policy without --audit-policy-file: every write by whom, on what, with
# what answer (Metadata: no bodies); reads and the noise of heartbeats and Events not at
# all; Secret, ConfigMap and token bodies never, whatever a later rule says.
DEFAULT_POLICY_YAML = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
# Health, version, discovery and OpenAPI: polled all the time, say nothing about who did what.
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/version/", "/api", "/api/*",
                    "/apis", "/apis/*", "/openapi/*", "/.well-known/*", "/openid/*", "/cacerts"]
- level: None
  verbs: ["get", "list", "watch"]
# Heartbeats (node and leader-election Leases) and Events: thousands a minute, no decision in them.
- level: None
  verbs: ["update", "patch"]
  resources: [{group: "coordination.k8s.io", resources: ["leases"]}]
- level: None
  resources: [{group: "", resources: ["events"]}, {group: "events.k8s.io", resources: ["events"]}]
# Bodies that carry secrets: never above Metadata.
- level: Metadata
  resources:
  - {group: "", resources: ["secrets", "configmaps", "serviceaccounts/token"]}
  - {group: "authentication.k8s.io", resources: ["tokenreviews"]}
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
"""


class PolicyError(ValueError):
    """A policy file kube-apiserver would refuse to start with."""


@dataclass(frozen=True)
class GroupResources:
    group: str
    resources: tuple[str, ...]
    resource_names: frozenset[str]


@dataclass(frozen=True)
class PolicyRule:
    level: str
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] | None = None
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass(frozen=True)
class Decision:
    """What the policy says about one request."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool


NOT_AUDITED = Decision(NONE, frozenset(), False)


# -- the policy file -----------------------------------------------------------------------


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: Invalid value: must be a list of strings")
    return value


def _stages(value: Any, where: str) -> frozenset[str]:
    out = _strings(value, where)
    for i, s in enumerate(out):
        if s not in STAGES:
            raise PolicyError(f'{where}[{i}]: Unsupported value: "{s}": supported values: '
                              + ", ".join(f'"{x}"' for x in STAGES))
    return frozenset(out)


def _bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise PolicyError(f"{where}: Invalid value: must be a boolean")


def _group_resources(value: Any, where: str) -> tuple[GroupResources, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f"{where}: Invalid value: must be a list")
    out = []
    for i, gr in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(gr, dict):
            raise PolicyError(f"{here}: Invalid value: must be an object")
        group = gr.get("group") or ""
        if not isinstance(group, str):
            raise PolicyError(f"{here}.group: Invalid value: must be a string")
        resources = _strings(gr.get("resources"), f"{here}.resources")
        names = _strings(gr.get("resourceNames"), f"{here}.resourceNames")
        if names and not resources:
            raise PolicyError(f"{here}.resourceNames: Invalid value: using resourceNames requires at least "
                              "one resource")
        for j, res in enumerate(resources):
            # upstream: "*" and "pods/*" and "*/scale" are the only wildcard forms.
            if res.count("/") > 1 or ("*" in res and res not in ("*",) and not res.endswith("/*")
                                      and not res.startswith("*/")):
                raise PolicyError(f'{here}.resources[{j}]: Invalid value: "{res}": wildcard is only allowed as '
                                  '"*", "<resource>/*" or "*/<subresource>"')
            if names and "*" in res:
                raise PolicyError(f'{here}.resources[{j}]: Invalid value: "{res}": resourceNames cannot be '
                                  "used with a wildcard resource")
        out.append(GroupResources(group, tuple(resources), frozenset(names)))
    return tuple(out)


def _rule(raw: Any, where: str) -> PolicyRule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: Invalid value: must be an object")
    level = raw.get("level")
    if not level:
        raise PolicyError(f"{where}.level: Required value")
    if level not in LEVELS:
        raise PolicyError(f'{where}.level: Unsupported value: "{level}": supported values: '
                          + ", ".join(f'"{x}"' for x in LEVELS))
    resources = _group_resources(raw.get("resources"), f"{where}.resources")
    namespaces = _strings(raw.get("namespaces"), f"{where}.namespaces")
    urls = _strings(raw.get("nonResourceURLs"), f"{where}.nonResourceURLs")
    if urls and (resources or namespaces):
        raise PolicyError(f"{where}.nonResourceURLs: Invalid value: rules cannot apply to both regular "
                          "resources and non-resource URLs")
    for i, url in enumerate(urls):
        if "*" in url.rstrip("*") or (url != "*" and not url.startswith("/")):
            raise PolicyError(f'{where}.nonResourceURLs[{i}]: Invalid value: "{url}": non-resource URLs must start '
                              'with "/" and may have "*" only as the final step')
    return PolicyRule(
        level=level,
        users=frozenset(_strings(raw.get("users"), f"{where}.users")),
        user_groups=frozenset(_strings(raw.get("userGroups"), f"{where}.userGroups")),
        verbs=frozenset(_strings(raw.get("verbs"), f"{where}.verbs")),
        resources=resources,
        namespaces=frozenset(namespaces) if namespaces else None,
        non_resource_urls=tuple(urls),
        omit_stages=_stages(raw.get("omitStages"), f"{where}.omitStages"),
        omit_managed_fields=_bool(raw.get("omitManagedFields"), f"{where}.omitManagedFields"),
    )


def parse_policy(doc: Any) -> Policy:
    """An audit Policy document (already parsed from YAML or JSON), validated."""
    if not isinstance(doc, dict):
        raise PolicyError("the audit policy must be an object of kind Policy")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != "Policy" or api_version not in _POLICY_VERSIONS:
        raise PolicyError(f'the audit policy must be kind "Policy" of apiVersion "{AUDIT_GROUP_VERSION}", '
                          f'not {kind!r} of {api_version!r}')
    raw_rules = doc.get("rules")
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise PolicyError("rules: Invalid value: must be a list")
    rules = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(raw_rules))
    top = _stages(doc.get("omitStages"), "omitStages")
    # Each rule omits its own stages and the policy's (upstream's union).
    rules = tuple(PolicyRule(**{**r.__dict__, "omit_stages": r.omit_stages | top}) for r in rules)
    return Policy(rules, top, bool(_bool(doc.get("omitManagedFields"), "omitManagedFields")))


def default_policy() -> Policy:
    import yaml

    return parse_policy(yaml.safe_load(DEFAULT_POLICY_YAML))


# -- matching ------------------------------------------------------------------------------


def _path_matches(path: str, spec: str) -> bool:
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def _resource_matches(rule: PolicyRule, attrs: Attributes) -> bool:
    if not attrs.resource_request:
        return False
    if rule.namespaces is not None and attrs.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    resource, sub = attrs.resource, attrs.subresource
    combined = f"{resource}/{sub}" if sub else resource
    for gr in rule.resources:
        if gr.group != attrs.api_group:
            continue
        if not gr.resources:
            return True
        if gr.resource_names and attrs.name not in gr.resource_names:
            continue
        for res in gr.resources:
            if res == combined or res == "*":
                return True
            if sub and res.startswith("*/") and res[2:] == sub:
                return True
            if res.endswith("/*") and res[:-2] == resource:
                return True
    return False


def rule_matches(rule: PolicyRule, attrs: Attributes) -> bool:
    """Whether one rule applies to a request (every field given must match)."""
    if rule.users and attrs.user not in rule.users:
        return False
    if rule.user_groups and not any(g in rule.user_groups for g in attrs.groups):
        return False
    if rule.verbs and attrs.verb not in rule.verbs:
        return False
    if rule.namespaces is not None or rule.resources:
        return _resource_matches(rule, attrs)
    if rule.non_resource_urls:
        return not attrs.resource_request and any(_path_matches(attrs.path, s) for s in rule.non_resource_urls)
    return True


class PolicyChecker:
    """The first matching rule's decision for a request."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._decisions = [Decision(r.level, r.omit_stages,
                                    policy.omit_managed_fields if r.omit_managed_fields is None
                                    else r.omit_managed_fields) for r in policy.rules]
        self._default = Decision(NONE, policy.omit_stages, policy.omit_managed_fields)

    def decide(self, attrs: Attributes) -> Decision:
        for rule, decision in zip(self.policy.rules, self._decisions, strict=True):
            if rule_matches(rule, attrs):
                return decision
        return self._default


def at_least(level: str, than: str) -> bool:
    return _RANK[level] >= _RANK[than]


def long_running(attrs: Attributes) -> bool:
    """Requests that stream (watches, logs, exec, proxies): they get a ResponseStarted event."""
    return attrs.verb in _LONG_RUNNING_VERBS or (
        attrs.resource_request and attrs.subresource in _LONG_RUNNING_SUBRESOURCES)


# -- events --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def micro_time(ts: float) -> str:
    """RFC 3339 with microseconds, UTC (metav1.MicroTime). Two per event: the formatted
    second is kept (most events fall in the same one)."""
    sec = int(ts)
    return f"{_second(sec)}.{min(int((ts - sec) * 1e6), 999999):06d}Z"


def user_info(username: str, uid: str = "", groups: Iterable[str] = (),
              extra: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """authentication.k8s.io/v1 UserInfo, empty fields left out as upstream's JSON does."""
    out: dict[str, Any] = {"username": username} if username else {}
    if uid:
        out["uid"] = uid
    groups = list(groups)
    if groups:
        out["groups"] = groups
    if extra:
        out["extra"] = {k: list(v) for k, v in extra.items()}
    return out


def source_ips(forwarded_for: str, real_ip: str, remote: str) -> list[str]:
    """X-Forwarded-For's addresses, then X-Real-Ip if not among them, then the peer if it
    is not the last one already (upstream's utilnet.SourceIPs)."""
    ips = [p.strip() for p in forwarded_for.split(",") if p.strip()] if forwarded_for else []
    real_ip = real_ip.strip()
    if real_ip and real_ip not in ips:
        ips.append(real_ip)
    if remote and (not ips or ips[-1] != remote):
        ips.append(remote)
    return ips


def truncate_user_agent(ua: str) -> str:
    return ua if len(ua) <= MAX_USER_AGENT else ua[:MAX_USER_AGENT] + "...TRUNCATED"


def api_version_of(path: str) -> str:
    """The version in a resource URL (/api/v1/..., /apis/<group>/<version>/...)."""
    parts = path.split("/", 5)
    if len(parts) > 2 and parts[1] == "api":
        return parts[2]
    if len(parts) > 3 and parts[1] == "apis":
        return parts[3]
    return ""


def new_event(audit_id: str, level: str, attrs: Attributes, request_uri: str, user: dict[str, Any],
              ips: list[str], user_agent: str) -> dict[str, Any]:
    """The fields every stage of a request's events shares (`stage_event` adds the rest)."""
    ev: dict[str, Any] = {"level": level, "auditID": audit_id, "requestURI": request_uri, "verb": attrs.verb,
                          "user": user}
    if ips:
        ev["sourceIPs"] = ips
    if user_agent:
        ev["userAgent"] = truncate_user_agent(user_agent)
    if attrs.resource_request:
        ref: dict[str, Any] = {}
        for key, value in (("resource", attrs.resource), ("namespace", attrs.namespace), ("name", attrs.name),
                           ("apiGroup", attrs.api_group), ("apiVersion", api_version_of(attrs.path)),
                           ("subresource", attrs.subresource)):
            if value:
                ref[key] = value
        ev["objectRef"] = ref
    return ev


def stage_event(base: dict[str, Any], stage: str, received: str, stamp: str, *,
                impersonated: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
                request_object: Any = None, response_object: Any = None,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """One stage's Event, its fields in upstream's order (lines compare equal to a real
    server's)."""
    ev: dict[str, Any] = {"kind": "Event", "apiVersion": AUDIT_GROUP_VERSION, "level": base["level"],
                          "auditID": base["auditID"], "stage": stage, "requestURI": base["requestURI"],
                          "verb": base["verb"], "user": base["user"]}
    if impersonated is not None:
        ev["impersonatedUser"] = impersonated
    for key in ("sourceIPs", "userAgent", "objectRef"):
        if key in base:
            ev[key] = base[key]
    if status is not None:
        ev["responseStatus"] = status
    if request_object is not None:
        ev["requestObject"] = request_object
    if response_object is not None:
        ev["responseObject"] = response_object
    ev["requestReceivedTimestamp"] = received
    ev["stageTimestamp"] = stamp
    if annotations:
        ev["annotations"] = annotations
    return ev


def fill_object_ref(ev: dict[str, Any], obj: Any) -> None:
    """Name, namespace, uid and resourceVersion from the request's object where the URL
    did not give them (a create names its object in the body)."""
    ref = ev.get("objectRef")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if ref is None or not isinstance(meta, dict):
        return
    for key in ("namespace", "name", "uid", "resourceVersion"):
        value = meta.get(key)
        if value and isinstance(value, str) and not ref.get(key):
            ref[key] = value
    # Keep upstream's field order (resource, namespace, name, uid, apiGroup, apiVersion,
    # resourceVersion, subresource) so lines compare equal to a real server's.
    order = ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource")
    ev["objectRef"] = {k: ref[k] for k in order if k in ref}


def response_status(code: int, status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event's responseStatus: the code, and a failure's Status fields."""
    out: dict[str, Any] = {"metadata": {}}
    if status:
        for key in ("status", "message", "reason", "details"):
            if status.get(key):
                out[key] = status[key]
    out["code"] = code
    return out


def without_managed_fields(obj: Any) -> Any:
    """A copy without metadata.managedFields (of the object, or of each item of a list)."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    items = out.get("items")
    if isinstance(items, list):
        out["items"] = [without_managed_fields(i) for i in items]
    return out


def event_list(lines: list[bytes]) -> bytes:
    """An audit EventList from already encoded events (the webhook backend's body)."""
    return (b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
            + b",".join(lines) + b"]}")
