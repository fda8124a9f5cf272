"""CertificateSigningRequests (certificates.k8s.io/v1): requests for x509 certificates.

A CSR is cluster-scoped. Its spec is the requester's and fixed at creation: the
server fills username, uid, groups and extra from the user who created it, and no
later write changes the spec. Approval (`Approved`/`Denied` conditions) goes through
the `/approval` subresource, the issued certificate through `/status`; Approved,
Denied and Failed conditions are never removed, and Approved and Denied exclude each
other. The rules are upstream's (pkg/apis/certificates/validation,
pkg/registry/certificates/certificates/strategy.go).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from kybernetes.api import names
from kybernetes.api.errors import (
    ApiError,
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from kybernetes.api.kinds.base import KindRef, KindStrategy, MainWrite, Requester, StatusWrite, WritePolicy
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    column,
    dict_at,
    doc,
    human_duration,
    name_column,
    name_of,
)
from kybernetes.api.timefmt import now_rfc3339
from kybernetes.api.validation import too_long

Obj = dict[str, Any]
Errors = list[FieldError]

GROUP = "certificates.k8s.io"
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"
KUBE_APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"

VALID_USAGES = sorted([
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
])
_TRUE_ONLY = (APPROVED, DENIED, FAILED)
_ALL_STATUSES = ["False", "True", "Unknown"]

_DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_LABEL_MAX = 63
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


# -- bytes fields ----------------------------------------------------------------------------


def decode_bytes(value: Any) -> bytes | None:
    """A JSON `[]byte` field (base64 text) as bytes; None when absent or not base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_request(value: Any) -> x509.CertificateSigningRequest:
    """The CSR of `spec.request`, its signature checked; ValueError with upstream's
    wording for anything else."""
    data = decode_bytes(value) or b""
    block = _PEM_BLOCK.search(data)
    if block is None or block.group(1) != b"CERTIFICATE REQUEST":
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(block.group(0))
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"x509: {e}") from None
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        valid = False
    if not valid:
        raise ValueError("x509: signature verification failure")
    return csr


def certificate_errors(value: Any) -> str | None:
    """Why `status.certificate` is not one or more CERTIFICATE PEM blocks (None when it is)."""
    data = decode_bytes(value) if value not in (None, "") else b""
    if data is None:
        return "illegal base64 data"
    if not data:
        return None
    blocks = 0
    for m in _PEM_BLOCK.finditer(data):
        if m.group(1) != b"CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{m.group(1).decode()}"'
        if b":" in m.group(2).split(b"\n", 1)[0]:
            return "no PEM block headers are permitted"
        try:
            x509.load_pem_x509_certificate(m.group(0))
        except ValueError as e:
            return f"x509: {e}"
        blocks += 1
    return None if blocks else "must contain at least one CERTIFICATE PEM block"


# -- validation ------------------------------------------------------------------------------


def signer_name_errors(path: str, signer: Any) -> Errors:
    """A signer name is `<fully qualified domain>/<path>` (core validation's ValidateSignerName)."""
    if not isinstance(signer, str) or not signer:
        return [required(path)]
    segments = signer.split("/")
    if len(segments) != 2:
        return [invalid(path, signer, "must be a fully qualified domain and path of the form "
                                      "'example.com/signer-name'")]
    domain, rest = segments
    errs: Errors = []
    if len(domain) > _DNS1123_SUBDOMAIN_MAX:
        errs.append(too_long(path, _DNS1123_SUBDOMAIN_MAX))
    labels = domain.split(".")
    for label in labels:
        problems = names.dns1123_label_errors(label)
        if problems:
            errs += [invalid(path, domain, f'validating label "{label}": {p}') for p in problems]
            break
    if len(labels) < 2:
        errs.append(invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for label in rest.split("."):
        problems = names.dns1123_subdomain_errors(label)
        if problems:
            errs += [invalid(path, rest, f'validating label "{label}": {p}') for p in problems]
            break
    longest = _DNS1123_SUBDOMAIN_MAX + (_DNS1123_SUBDOMAIN_MAX + _DNS1123_LABEL_MAX + 1) + 1
    if len(signer) > longest:
        errs.append(too_long(path, longest))
    return errs


def conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    raw = status.get("conditions") if isinstance(status, Mapping) else None
    return [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []


def _of_type(obj: Mapping[str, Any], ctype: str) -> list[Mapping[str, Any]]:
    return [c for c in conditions(obj) if c.get("type") == ctype]


def condition_errors(obj: Mapping[str, Any]) -> Errors:
    errs: Errors = []
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(conditions(obj)):
        path = f"status.conditions[{i}]"
        ctype = c.get("type") or ""
        if not ctype:
            errs.append(required(f"{path}.type"))
        allowed = ["True"] if ctype in _TRUE_ONLY else _ALL_STATUSES
        status = c.get("status") or ""
        if not status:
            errs.append(required(f"{path}.status"))
        elif status not in allowed:
            errs.append(not_supported(f"{path}.status", status, allowed))
        if ctype == APPROVED:
            approved = True
            if denied:
                errs.append(invalid(f"{path}.type", ctype, "Approved and Denied conditions are mutually exclusive"))
        elif ctype == DENIED:
            denied = True
            if approved:
                errs.append(invalid(f"{path}.type", ctype, "Approved and Denied conditions are mutually exclusive"))
        if ctype in seen:
            errs.append(duplicate(f"{path}.type", ctype))
        seen.add(ctype)
    return errs


def validate_csr(obj: Mapping[str, Any]) -> Errors:
    """The rules of a CSR on every write (ValidateCertificateSigningRequestCreate)."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return [required("spec")]
    errs: Errors = []
    try:
        parse_request(spec.get("request"))
    except ValueError as e:
        errs.append(invalid("spec.request", spec.get("request"), str(e)))
    usages = spec.get("usages") if isinstance(spec.get("usages"), list) else []
    if not usages:
        errs.append(required("spec.usages"))
    seen: set[Any] = set()
    for i, usage in enumerate(usages):
        if usage not in VALID_USAGES:
            errs.append(not_supported(f"spec.usages[{i}]", usage, VALID_USAGES))
        if isinstance(usage, str) and usage in seen:
            errs.append(duplicate(f"spec.usages[{i}]", usage))
        if isinstance(usage, str):
            seen.add(usage)
    signer = spec.get("signerName")
    if signer == LEGACY_UNKNOWN_SIGNER:
        errs.append(invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version"))
    else:
        errs += signer_name_errors("spec.signerName", signer)
    expiration = spec.get("expirationSeconds")
    if isinstance(expiration, int) and not isinstance(expiration, bool) and expiration < 600:
        errs.append(invalid("spec.expirationSeconds", expiration,
                            "may not specify a duration less than 600 seconds (10 minutes)"))
    errs += condition_errors(obj)
    problem = certificate_errors(dict_at(obj, "status").get("certificate"))
    if problem is not None:
        errs.append(invalid("status.certificate", "<certificate data>", problem))
    return errs


def validate_csr_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Errors:
    """What no write may do to a stored CSR: drop an Approved, Denied or Failed condition,
    or replace an issued certificate."""
    errs: Errors = []
    for ctype in (APPROVED, DENIED, FAILED):
        if len(_of_type(new, ctype)) < len(_of_type(old, ctype)):
            errs.append(forbidden("status.conditions", f'updates may not remove a condition of type "{ctype}"'))
    old_cert = dict_at(old, "status").get("certificate") or ""
    if (dict_at(new, "status").get("certificate") or "") != old_cert and old_cert:
        errs.append(forbidden("status.certificate", "updates may not modify existing certificate content"))
    return errs


# -- writes through the object, /status and /approval ------------------------------------------


def _with_timestamps(new_conditions: list[Any], old: Mapping[str, Any], now: str) -> list[Any]:
    """Conditions with the times the server fills in: lastUpdateTime when unset, and
    lastTransitionTime from the old condition of that type and status, else now."""
    old_by_type = {c.get("type"): c for c in conditions(old)}
    out = []
    for c in new_conditions:
        if not isinstance(c, Mapping):
            out.append(c)
            continue
        c = dict(c)
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            before = old_by_type.get(c.get("type"))
            same = before is not None and before.get("status") == c.get("status")
            c["lastTransitionTime"] = (before.get("lastTransitionTime") if same and before else None) or now
        out.append(c)
    return out


def _refuse(name: str, detail: str) -> ApiError:
    return ApiError.invalid(GROUP, "CertificateSigningRequest", name, [forbidden("status.conditions", detail)])


@dataclass(frozen=True)
class _CsrMainWrite(MainWrite):
    """The object itself: metadata only; spec and status stay as stored."""

    keeps_status: bool = True

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        new = super().merge(old, new, managed_done)
        new["spec"] = old.get("spec")
        return new


@dataclass(frozen=True)
class _CsrStatusWrite(StatusWrite):
    """`/status`: the certificate and conditions other than Approved/Denied (the
    signer's concern, apart from approval)."""

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        merged = super().merge(old, new, managed_done)
        status = dict(merged.get("status") or {})
        kept = {c.get("type"): c for c in conditions(old) if c.get("type") in (APPROVED, DENIED)}
        listed = status.get("conditions") if isinstance(status.get("conditions"), list) else []
        for ctype in (APPROVED, DENIED):
            added = sum(1 for c in listed if isinstance(c, Mapping) and c.get("type") == ctype)
            if added > (1 if ctype in kept else 0):
                raise _refuse(old["metadata"].get("name", ""), f'updates may not add a condition of type "{ctype}"')
        if listed:
            listed = [kept.get(c.get("type"), c) if isinstance(c, Mapping) else c for c in listed]
            status["conditions"] = _with_timestamps(listed, old, now_rfc3339())
        merged["status"] = status
        return merged


@dataclass(frozen=True)
class _CsrApprovalWrite(StatusWrite):
    """`/approval`: only the conditions (and user metadata) change."""

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        merged = super().merge(old, new, managed_done)
        status = dict(old.get("status") or {})
        new_status = new.get("status") if isinstance(new.get("status"), Mapping) else {}
        listed = new_status.get("conditions") if isinstance(new_status, Mapping) else None
        if isinstance(listed, list) and listed:
            status["conditions"] = _with_timestamps(listed, old, now_rfc3339())
        else:
            status.pop("conditions", None)
        merged["status"] = status
        return merged


_MAIN = _CsrMainWrite()
_STATUS = _CsrStatusWrite()
_APPROVAL = _CsrApprovalWrite()


# -- table -----------------------------------------------------------------------------------


def csr_condition(obj: Mapping[str, Any]) -> str:
    """The CONDITION column: Denied, Approved or Pending, then ",Failed" and ",Issued"."""
    types = {c.get("type") for c in conditions(obj)}
    text = "Denied" if DENIED in types else "Approved" if APPROVED in types else "Pending"
    if FAILED in types:
        text += ",Failed"
    if dict_at(obj, "status").get("certificate"):
        text += ",Issued"
    return text


def _columns() -> list[dict[str, Any]]:
    spec, status = "certificates.v1.CertificateSigningRequestSpec", "certificates.v1.CertificateSigningRequestStatus"
    return [
        name_column(),
        age_column(),
        column("SignerName", doc(spec, "signerName")),
        # Upstream describes this column with the `request` field's documentation.
        column("Requestor", doc(spec, "request")),
        column("RequestedDuration", doc(spec, "expirationSeconds")),
        column("Condition", doc(status, "conditions")),
    ]


def _cells(obj: Obj, now: datetime) -> list[Any]:
    spec = dict_at(obj, "spec")
    expiration = spec.get("expirationSeconds")
    duration = human_duration(expiration) if isinstance(expiration, int) and not isinstance(expiration, bool) \
        else "<none>"
    return [name_of(obj), age_of(obj, now), spec.get("signerName") or "<none>", spec.get("username") or "",
            duration, csr_condition(obj)]


# -- strategy --------------------------------------------------------------------------------


class CertificateSigningRequestStrategy(KindStrategy):
    refs = (KindRef(GROUP, "CertificateSigningRequest"),)
    counts_generation = False  # upstream's PrepareForCreate sets no generation

    def prepare_for_create(self, info: ResourceInfo, obj: Obj) -> None:
        # Users cannot create pre-approved (or pre-issued) requests.
        obj["status"] = {}

    def stamp_creator(self, info: ResourceInfo, obj: Obj, requester: Requester | None) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for key in ("username", "uid", "groups", "extra"):
            spec.pop(key, None)
        if requester is None:
            return
        spec["username"] = requester.username
        if requester.uid:
            spec["uid"] = requester.uid
        if requester.groups:
            spec["groups"] = list(requester.groups)
        if requester.extra:
            spec["extra"] = {k: list(v) for k, v in requester.extra}

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_csr(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return validate_csr_update(new, old)

    def has_generation(self, info: ResourceInfo, obj: Obj) -> bool:
        return False  # the spec never changes after creation

    def write_policy(self, info: ResourceInfo, subresource: str) -> WritePolicy | None:
        return {"": _MAIN, "status": _STATUS, "approval": _APPROVAL}.get(subresource)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns()

    def cells(self, obj: Obj, now: datetime) -> list[Any]:
        return _cells(obj, now)
