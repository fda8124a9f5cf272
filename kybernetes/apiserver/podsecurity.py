"""The PodSecurity admission plugin's shell: reads a namespace's policy from its labels in
the watch cache and hands pods (and the pod templates of workloads) to the rules in
`kybernetes/api/podsecurity.py`.

As upstream's pod-security-admission:
- a pod create (or a significant update, or new ephemeral containers) that breaks the
  namespace's `enforce` level is refused (403); one that breaks its `warn` level is
  admitted with `Warning` headers; one that breaks its `audit` level gets the
  `pod-security.kubernetes.io/audit-violations` annotation on its audit event
  (`WriteContext.audit_annotations`);
- workloads holding a pod template (Deployments, Jobs, ...) only warn and audit;
- a namespace's labels must parse, and making its enforce level stricter warns about the
  pods already there that would now be refused;
- exempt users, runtime classes and namespaces (the plugin's configuration) are never
  checked. Without configuration every level is privileged: kube-system and the
  cluster's own components are untouched unless someone labels their namespace.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import yaml

from kybernetes.api import podsecurity as ps
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver.resources import WriteContext
from kybernetes.apiserver.watchcache import WatchCache

Obj = dict[str, Any]
# Evaluations remembered (by level, version and what the checks read), dropped all at once
# when full.
MEMO_SIZE = 2048


class PodSecurityAdmission:
    def __init__(self, registry: Registry, cache: WatchCache, config: ps.Config | None = None) -> None:
        self.cache = cache
        self.config = config or ps.Config()
        self._memo: dict[bytes, list[tuple[str, str]]] = {}
        ns = registry.get("", "v1", "namespaces")
        pods = registry.get("", "v1", "pods")
        self.ns_prefix = ns.storage_prefix() if ns is not None else "/registry/core/namespaces/"
        self.pod_prefix = pods.storage_prefix() if pods is not None else "/registry/core/pods/"

    def policy(self, namespace: str) -> ps.Policy:
        co = self.cache.get(self.ns_prefix + namespace)
        labels = ((co.obj.get("metadata") or {}).get("labels") if co is not None else None) or {}
        if not labels and self.config.defaults.privileged():
            return self.config.defaults
        policy, _errs = ps.policy_from_labels(labels, self.config.defaults)
        return policy

    def admit(self, operation: str, info: ResourceInfo, subresource: str, new: Obj, old: Obj | None,
              ctx: WriteContext) -> None:
        if info.group == "" and info.plural == "pods":
            self._admit_pod(operation, info, subresource, new, old, ctx)
        elif info.group == "" and info.plural == "namespaces":
            self._admit_namespace(operation, subresource, new, old, ctx)
        elif ps.holds_template(info.group, info.plural) and subresource == "":
            # As upstream: an update that leaves the pod template alone (a scale, a
            # controller's annotation) is not judged again.
            if operation == "update" and old is not None and \
                    ps.pod_template(info.group, info.plural, new) == ps.pod_template(info.group, info.plural, old):
                return
            self._admit_workload(info, new, ctx)

    def _exempt(self, namespace: str, ctx: WriteContext, spec: Obj) -> str | None:
        """Why the request is exempt (upstream's audit annotation value), or None."""
        cfg = self.config
        if namespace in cfg.exempt_namespaces:
            return "namespace"
        if ctx.requester is not None and ctx.requester.username in cfg.exempt_usernames:
            return "user"
        if spec.get("runtimeClassName") in cfg.exempt_runtime_classes:
            return "runtimeClass"
        return None

    def _evaluate(self, lv: ps.LevelVersion, meta: Obj, spec: Obj) -> list[tuple[str, str]]:
        """ps.evaluate, remembered by what it reads: the pods of one template (a
        ReplicaSet's) differ only in names, so most creates are answered from the memo."""
        if lv.level == ps.PRIVILEGED:
            return []
        annotations = meta.get("annotations") or {}
        relevant = {k: v for k, v in annotations.items() if "apparmor" in k or "seccomp" in k} \
            if isinstance(annotations, dict) else {}
        try:
            key = orjson.dumps([lv.level, lv.minor, relevant, _key_spec(spec)], option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return ps.evaluate(lv, meta, spec)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = ps.evaluate(lv, meta, spec)
        return found

    # -- pods ----------------------------------------------------------------------------

    def _admit_pod(self, operation: str, info: ResourceInfo, subresource: str, new: Obj, old: Obj | None,
                   ctx: WriteContext) -> None:
        if subresource not in ("", "ephemeralcontainers"):
            return
        meta = new.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        policy = self.policy(namespace)
        if policy.privileged():
            return
        spec = new.get("spec") or {}
        if (why := self._exempt(namespace, ctx, spec)) is not None:
            ctx.audit_annotations[ps.EXEMPT] = why
            return
        if operation == "update" and subresource == "" and old is not None \
                and not ps.significant_pod_update(new, old):
            return
        results: dict[ps.LevelVersion, list[tuple[str, str]]] = {}

        def judge(lv: ps.LevelVersion) -> list[tuple[str, str]]:
            if lv not in results:
                results[lv] = self._evaluate(lv, meta, spec)
            return results[lv]

        ctx.audit_annotations[ps.ENFORCE_POLICY] = str(policy.enforce)
        refused = judge(policy.enforce)
        audit = judge(policy.audit)
        if audit:
            ctx.audit_annotations[ps.AUDIT_VIOLATIONS] = ps.warn_message(policy.audit, audit)
        if refused:
            name = meta.get("name") or ""
            raise ApiError(403, "Forbidden",
                           f'{info.qualified_plural} "{name}" is forbidden: {ps.enforce_message(policy.enforce, refused)}',
                           {"name": name, "kind": info.plural})
        warn = judge(policy.warn)
        if warn:
            ctx.warnings.append(ps.warn_message(policy.warn, warn))

    # -- workloads -----------------------------------------------------------------------

    def _admit_workload(self, info: ResourceInfo, new: Obj, ctx: WriteContext) -> None:
        namespace = (new.get("metadata") or {}).get("namespace") or ""
        policy = self.policy(namespace)
        if policy.warn.level == ps.PRIVILEGED and policy.audit.level == ps.PRIVILEGED:
            return
        template = ps.pod_template(info.group, info.plural, new)
        if template is None:
            return
        meta, spec = template
        if (why := self._exempt(namespace, ctx, spec)) is not None:
            ctx.audit_annotations[ps.EXEMPT] = why
            return
        audit = self._evaluate(policy.audit, meta, spec)
        if audit:
            ctx.audit_annotations[ps.AUDIT_VIOLATIONS] = ps.warn_message(policy.audit, audit)
        warn = audit if policy.warn == policy.audit else self._evaluate(policy.warn, meta, spec)
        if warn:
            ctx.warnings.append(ps.warn_message(policy.warn, warn))

    # -- namespaces ----------------------------------------------------------------------

    def _admit_namespace(self, operation: str, subresource: str, new: Obj, old: Obj | None,
                         ctx: WriteContext) -> None:
        if subresource != "":
            return
        meta = new.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = meta.get("name") or ""
        if operation == "update" and old is not None:
            old_labels = (old.get("metadata") or {}).get("labels") or {}
            if _policy_labels(labels) == _policy_labels(old_labels):
                return
        else:
            old_labels = None
        policy, errs = ps.policy_from_labels(labels, self.config.defaults)
        if errs:
            raise ApiError.invalid("", "Namespace", name, errs)
        if old_labels is None:
            return
        before, _ = ps.policy_from_labels(old_labels, self.config.defaults)
        new_lv, old_lv = policy.enforce, before.enforce
        if new_lv == old_lv or new_lv.level == ps.PRIVILEGED:
            return
        if new_lv.minor == old_lv.minor and ps.level_rank(new_lv.level) <= ps.level_rank(old_lv.level):
            return
        if name in self.config.exempt_namespaces:
            return
        pods = sorted((co.obj for co in self.cache.list(self.pod_prefix + name + "/")),
                      key=lambda p: (p.get("metadata") or {}).get("name") or "")
        ctx.warnings.extend(ps.namespace_pod_warnings(name, new_lv, pods))


# What no check reads: each pod's own token volume name (kube-api-access-<random>) would
# otherwise make every pod of a template a new memo entry.
_UNREAD_CONTAINER_FIELDS = ("volumeMounts", "env", "envFrom", "command", "args")
_QUIET_VOLUMES = ("projected", "secret", "configMap", "emptyDir", "downwardAPI")


def _key_spec(spec: Obj) -> Obj:
    out = dict(spec)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        items = spec.get(key)
        if isinstance(items, list):
            out[key] = [{k: v for k, v in c.items() if k not in _UNREAD_CONTAINER_FIELDS}
                        if isinstance(c, dict) else c for c in items]
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        out["volumes"] = [{k: v for k, v in vol.items() if k != "name"}
                          if isinstance(vol, dict) and any(q in vol for q in _QUIET_VOLUMES) else vol
                          for vol in volumes]
    return out


def _policy_labels(labels: Any) -> dict[str, Any]:
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and k.startswith(ps.LABEL_PREFIX)}


ADMISSION_CONFIG_GROUPS = ("apiserver.config.k8s.io/", "apiserver.k8s.io/")


def load_admission_config(path: str) -> ps.Config:
    """The PodSecurity plugin's configuration from kube-apiserver's
    `--admission-control-config-file` (an AdmissionConfiguration whose `plugins` entry
    named PodSecurity holds a PodSecurityConfiguration inline or names its file).
    Without such an entry, the defaults. ValueError (or OSError) says what is wrong."""
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or doc.get("kind") != "AdmissionConfiguration" \
            or not str(doc.get("apiVersion") or "").startswith(ADMISSION_CONFIG_GROUPS):
        raise ValueError(f"{path}: expected an apiserver.config.k8s.io/v1 AdmissionConfiguration")
    plugins = doc.get("plugins") or []
    if not isinstance(plugins, list):
        raise ValueError(f"{path}: plugins must be a list")
    for plugin in plugins:
        if not isinstance(plugin, dict) or plugin.get("name") != "PodSecurity":
            continue
        config = plugin.get("configuration")
        if config is None and plugin.get("path"):
            where = os.path.join(os.path.dirname(os.path.abspath(path)), str(plugin["path"]))
            with open(where, encoding="utf-8") as f:
                config = yaml.safe_load(f)
        if config is None:
            return ps.Config()
        try:
            return ps.parse_config(config)
        except ValueError as e:
            raise ValueError(f"{path}: PodSecurity: {e}") from None
    return ps.Config()
