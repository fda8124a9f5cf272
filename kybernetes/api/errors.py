"""API errors: one exception type that carries a Kubernetes `Status` object.

Every failure the API server reports is an `ApiError`; the HTTP layer turns it
into a `Status` response with the same code. Constructors mirror the reasons of
the Kubernetes API conventions so callers say *what* went wrong, not how it is
encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    """One cause of an Invalid error (`details.causes[]`)."""

    type: str  # FieldValueInvalid, FieldValueRequired, FieldValueForbidden, ...
    field: str  # "spec.containers[0].image"
    detail: str = ""
    value: Any = None
    has_value: bool = False

    def message(self) -> str:
        label = {
            "FieldValueInvalid": "Invalid value",
            "FieldValueRequired": "Required value",
            "FieldValueForbidden": "Forbidden",
            "FieldValueDuplicate": "Duplicate value",
            "FieldValueNotSupported": "Unsupported value",
            "FieldValueTooLong": "Too long",
            "FieldValueTooMany": "Too many",
            "FieldValueNotFound": "Not found",
            "FieldValueTypeInvalid": "Invalid value",
            "FieldManagerConflict": "conflict",
        }.get(self.type, self.type)
        text = label
        if self.has_value:
            text += f": {_render_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid(field_path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", field_path, detail, value, True)


def required(field_path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field_path, detail)


def forbidden(field_path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field_path, detail)


def not_supported(field_path: str, value: Any, supported: list[str]) -> FieldError:
    quoted = ", ".join(f'"{s}"' for s in supported)
    return FieldError("FieldValueNotSupported", field_path, f"supported values: {quoted}", value, True)


def duplicate(field_path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field_path, "", value, True)


# Go's encoding/json writes struct fields in declaration order and skips empty
# `omitempty` ones; some clients compare Status text, so the keys follow
# metav1.Status / StatusDetails / StatusCause exactly.
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def _ordered(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {k: d[k] for k in order if d.get(k) not in (None, "", 0, [])}
    # Keys upstream does not know keep their place after the known ones rather than vanish.
    out.update((k, v) for k, v in d.items() if k not in order)
    return out


def ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    """`details` in metav1.StatusDetails field order, empty fields left out as upstream does."""
    out = _ordered(details, _DETAILS_ORDER)
    if "causes" in out:
        out["causes"] = [_ordered(c, _CAUSE_ORDER) if isinstance(c, dict) else c for c in out["causes"]]
    return out


def status_object(status: str, *, message: str = "", reason: str = "", details: dict[str, Any] | None = None,
                  code: int = 0, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `Status` dict whose key order and omitted fields match kube-apiserver's JSON."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {}, "status": status}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = ordered_details(details)
    if code:
        body["code"] = code
    return body


@dataclass
class ApiError(Exception):
    """A failed API request, rendered as a `Status` with HTTP status `code`."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        return status_object("Failure", message=self.message, reason=self.reason, details=self.details,
                             code=self.code)

    # -- constructors, one per reason ------------------------------------------------

    @staticmethod
    def _details(group: str, plural: str, name: str) -> dict[str, Any]:
        d: dict[str, Any] = {"name": name, "kind": plural}
        if group:
            d["group"] = group
        return d

    @classmethod
    def not_found(cls, group: str, plural: str, name: str) -> ApiError:
        res = f"{plural}.{group}" if group else plural
        return cls(404, "NotFound", f'{res} "{name}" not found', cls._details(group, plural, name))

    @classmethod
    def path_not_found(cls) -> ApiError:
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def already_exists(cls, group: str, plural: str, name: str) -> ApiError:
        res = f"{plural}.{group}" if group else plural
        return cls(409, "AlreadyExists", f'{res} "{name}" already exists', cls._details(group, plural, name))

    @classmethod
    def conflict(cls, group: str, plural: str, name: str, why: str | None = None) -> ApiError:
        res = f"{plural}.{group}" if group else plural
        why = why or "the object has been modified; please apply your changes to the latest version and try again"
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {res} "{name}": {why}',
                   cls._details(group, plural, name))

    @classmethod
    def invalid(cls, group: str, kind: str, name: str, causes: list[FieldError]) -> ApiError:
        qualified = f"{kind}.{group}" if group else kind
        msgs = [f"{c.field}: {c.message()}" if c.field else c.message() for c in causes]
        joined = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
        details: dict[str, Any] = {"name": name, "kind": kind}
        if group:
            details["group"] = group
        details["causes"] = [{"reason": c.type, "message": c.message(), "field": c.field} for c in causes]
        return cls(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def unauthorized(cls) -> ApiError:
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def forbidden(cls, message: str, group: str = "", plural: str = "", name: str = "") -> ApiError:
        return cls(403, "Forbidden", message, cls._details(group, plural, name) if plural else None)

    @classmethod
    def method_not_allowed(cls) -> ApiError:
        return cls(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})

    @classmethod
    def not_acceptable(cls, message: str) -> ApiError:
        return cls(406, "NotAcceptable", message)

    @classmethod
    def gone(cls, message: str = "The resourceVersion for the provided list is too old.") -> ApiError:
        return cls(410, "Expired", message)

    @classmethod
    def too_large(cls, message: str = "Request entity too large: limit is 3145728") -> ApiError:
        return cls(413, "RequestEntityTooLarge", message)

    @classmethod
    def unsupported_media_type(cls, content_type: str = "") -> ApiError:
        return cls(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})

    @classmethod
    def internal(cls, message: str) -> ApiError:
        return cls(500, "InternalError", f"Internal error occurred: {message}")

    @classmethod
    def timeout(cls, message: str) -> ApiError:
        return cls(504, "Timeout", message)
