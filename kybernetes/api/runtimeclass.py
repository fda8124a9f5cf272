"""What a pod may ask of the node's container runtime, as pure functions on dicts:
upstream's RuntimeClass admission plugin, and the refusal of image volumes.

RuntimeClass (on pod create, as upstream's plugin, which handles creates only):

* `admit_runtime_class` (mutating): a pod naming a RuntimeClass that does not exist is
  refused ("pod rejected: RuntimeClass "x" not found"); the class's `overhead.podFixed`
  becomes the pod's `spec.overhead` (a pod that wrote a different one is refused); the
  class's `scheduling.nodeSelector` is merged into the pod's (a key with another value is
  a conflict, refused) and its tolerations are merged into the pod's (upstream's
  MergeTolerations: a toleration another one already covers is left out);
* `overhead_error` (validating): a pod's overhead must be exactly its class's; without a
  class that defines one, a pod may not set one.

Image volumes (`volumes[].image`, the ImageVolume feature): containerd 1.6, the runtime
every node agent of this project runs, has no image-volume support in CRI (it arrived in
containerd 2.1), so such a pod could never start as written. Upstream with the feature off
drops the field and then refuses the volume for having no source; here the pod is refused
at admission with a message that says why (`image_volume_errors`), never accepted and
left to fail on the node.

Refusals are 403 Forbidden with upstream's words (`pods "<name>" is forbidden: ...`),
except the image volume, an invalid field (422)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kybernetes.api.errors import ApiError, FieldError, forbidden
from kybernetes.api.quantity import parse_quantity

Obj = dict[str, Any]

GROUP = "node.k8s.io"
IMAGE_VOLUMES_UNSUPPORTED = ("image volumes are not supported: the nodes' container runtime (containerd 1.6) "
                             "cannot mount an OCI image as a volume")


def _pod_forbidden(pod: Obj, why: str) -> ApiError:
    name = (pod.get("metadata") or {}).get("name") or ""
    return ApiError.forbidden(f'pods "{name}" is forbidden: {why}', "", "pods", name)


def same_resources(a: Any, b: Any) -> bool:
    """Upstream's semantic equality of two ResourceLists: the same names, equal quantities
    ("1000m" is "1")."""
    a, b = a if isinstance(a, dict) else {}, b if isinstance(b, dict) else {}
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        left, right = parse_quantity(value), parse_quantity(b[key])
        if left is None or right is None or left != right:
            return False
    return True


def _operator(t: Obj) -> str:
    return t.get("operator") or "Equal"


def tolerates_superset(ss: Obj, t: Obj) -> bool:
    """Whether toleration `ss` tolerates everything `t` does (upstream's isSuperset)."""
    if ss == t:
        return True
    if (t.get("key") or "") != (ss.get("key") or "") and ((ss.get("key") or "") != "" or _operator(ss) != "Exists"):
        return False
    if (t.get("effect") or "") != (ss.get("effect") or "") and (ss.get("effect") or "") != "":
        return False
    if ss.get("effect") == "NoExecute" and ss.get("tolerationSeconds") is not None:
        if t.get("tolerationSeconds") is None or t["tolerationSeconds"] > ss["tolerationSeconds"]:
            return False
    if _operator(ss) == "Equal":
        return _operator(t) == "Equal" and (t.get("value") or "") == (ss.get("value") or "")
    return _operator(ss) == "Exists"


def merge_tolerations(first: list[Obj], second: list[Obj]) -> list[Obj]:
    """Both lists, in order, without the tolerations another one already covers (of two
    equal ones, the first stays)."""
    every = [t for t in [*first, *second] if isinstance(t, dict)]
    merged: list[Obj] = []
    for i, t in enumerate(every):
        if any(tolerates_superset(kept, t) for kept in merged):
            continue
        if any(later != t and tolerates_superset(later, t) for later in every[i + 1:]):
            continue
        merged.append(t)
    return merged


def admit_runtime_class(pod: Obj, lookup: Callable[[str], Obj | None]) -> None:
    """The mutating half of the plugin for a new pod; `lookup` finds a RuntimeClass by
    name (None when there is none). Raises ApiError when the pod is refused."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not spec.get("runtimeClassName"):
        return
    name = spec["runtimeClassName"]
    rc = lookup(name)
    if rc is None:
        raise _pod_forbidden(pod, f'pod rejected: RuntimeClass "{name}" not found')
    overhead = (rc.get("overhead") or {}).get("podFixed") if isinstance(rc.get("overhead"), dict) else None
    if overhead is not None:
        if spec.get("overhead") and not same_resources(overhead, spec["overhead"]):
            raise _pod_forbidden(pod, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
        spec["overhead"] = dict(overhead)
    scheduling = rc.get("scheduling")
    if not isinstance(scheduling, dict):
        return
    selector = spec.get("nodeSelector")
    wanted = scheduling.get("nodeSelector") or {}
    if not isinstance(selector, dict) or not selector:
        selector = dict(wanted) if wanted else selector
    else:
        for key, value in wanted.items():
            if key in selector and selector[key] != value:
                raise _pod_forbidden(pod, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                                          f"pod.spec.nodeSelector[{key}] = {selector[key]}")
            selector[key] = value
    if selector:
        spec["nodeSelector"] = selector
    tolerations = merge_tolerations(spec.get("tolerations") or [], scheduling.get("tolerations") or [])
    if tolerations:
        spec["tolerations"] = tolerations


def overhead_error(pod: Obj, lookup: Callable[[str], Obj | None]) -> ApiError | None:
    """The validating half: the pod's overhead against its class's (after mutating
    admission and webhooks, which could have changed either)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    name = spec.get("runtimeClassName")
    rc = lookup(name) if name else None
    if name and rc is None:
        return _pod_forbidden(pod, f'pod rejected: RuntimeClass "{name}" not found')
    defined = (rc or {}).get("overhead")
    fixed = defined.get("podFixed") if isinstance(defined, dict) else None
    if fixed is not None:
        if not same_resources(fixed, spec.get("overhead")):
            return _pod_forbidden(pod, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
    elif spec.get("overhead"):
        return _pod_forbidden(pod, "pod rejected: Pod Overhead set without corresponding RuntimeClass defined "
                                   "Overhead")
    return None


def image_volume_errors(pod: Obj) -> list[FieldError]:
    """`spec.volumes[i].image` entries: each refused (see the module's docstring)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    return [forbidden(f"spec.volumes[{i}].image", IMAGE_VOLUMES_UNSUPPORTED)
            for i, vol in enumerate(spec.get("volumes") or [])
            if isinstance(vol, dict) and vol.get("image") is not None]


def handler_of(runtime_class: Obj | None) -> str:
    """The CRI handler a pod of this class runs with ("" is the runtime's default)."""
    return str((runtime_class or {}).get("handler") or "")
