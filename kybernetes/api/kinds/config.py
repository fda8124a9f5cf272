"""ConfigMaps, Secrets and ServiceAccounts."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kybernetes.api import serviceaccounts
from kybernetes.api.defaults import set_default
from kybernetes.api.errors import FieldError, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import config_key_errors, dns1123_subdomain_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import age_column, age_of, as_str, column, dict_at, doc, name_column, name_of
from kybernetes.api.validation import as_dict, as_list, immutable, name_errors, too_long

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_data_keys(obj: Obj, fields: Iterable[str]) -> Errors:
    errs: Errors = []
    seen: dict[str, str] = {}
    for field_name in fields:
        data = obj.get(field_name)
        if not isinstance(data, dict):
            continue
        for key in data:
            errs += [invalid(f"{field_name}[{key}]", key, m) for m in config_key_errors(key)]
            if key in seen:
                errs.append(invalid(f"{field_name}[{key}]", key, f"duplicate of key present in {seen[key]}"))
            seen[key] = field_name
    return errs


MAX_DATA_SIZE = 1024 * 1024


def _validate_configmap(info: ResourceInfo, obj: Obj) -> Errors:
    errs = _validate_data_keys(obj, ("data", "binaryData"))
    size = sum(len(k) + len(str(v).encode()) for k, v in as_dict(obj.get("data")).items())
    for key, value in as_dict(obj.get("binaryData")).items():
        size += len(key) + _decoded_len(value)
    if size > MAX_DATA_SIZE:
        errs.append(too_long("", MAX_DATA_SIZE))
    return errs


def _decoded_len(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def _validate_secret(info: ResourceInfo, obj: Obj) -> Errors:
    errs = _validate_data_keys(obj, ("data", "stringData"))
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    keys = set(data) | set(as_dict(obj.get("stringData")))
    size = sum(len(k) + _decoded_len(v) for k, v in data.items())
    if size > MAX_DATA_SIZE:
        errs.append(too_long("data", MAX_DATA_SIZE))
    secret_type = obj.get("type")
    for key in _SECRET_REQUIRED_KEYS.get(secret_type, ()) if isinstance(secret_type, str) else ():
        if key not in keys:
            errs.append(required(f"data[{key}]"))
    if secret_type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        errs.append(required("data[username]"))
    if secret_type == "kubernetes.io/service-account-token":
        annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    return errs


def _validate_immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> Errors:
    if old.get("immutable") is not True:
        return []
    errs: Errors = []
    detail = "field is immutable when `immutable` is set"
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", detail))
    for field_name in fields:
        if (new.get(field_name) or {}) != (old.get(field_name) or {}):
            errs.append(forbidden(field_name, detail))
    return errs


def _validate_configmap_update(new: Obj, old: Obj) -> Errors:
    return _validate_immutable_data(new, old, ("data", "binaryData"))


def _validate_secret_update(new: Obj, old: Obj) -> Errors:
    errs = immutable("type", new.get("type"), old.get("type"))
    return errs + _validate_immutable_data(new, old, ("data",))


def _validate_service_account(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    for i, ref in enumerate(as_list(obj.get("secrets"))):
        if isinstance(ref, dict) and ref.get("name"):
            errs += name_errors(dns1123_subdomain_errors, f"secrets[{i}].name", ref["name"])
    return errs


def _default_secret(obj: Obj) -> None:
    set_default(obj, "type", "Opaque")


def _columns_configmap() -> list[dict[str, Any]]:
    return [name_column(), column("Data", doc("core.v1.ConfigMap", "data")), age_column()]


def _columns_secret() -> list[dict[str, Any]]:
    return [name_column(), column("Type", doc("core.v1.Secret", "type")),
            column("Data", doc("core.v1.Secret", "data")), age_column()]


def _cells_configmap(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), len(dict_at(obj, "data")) + len(dict_at(obj, "binaryData")), age_of(obj, now)]


def _cells_secret(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), as_str(obj.get("type")), len(dict_at(obj, "data")), age_of(obj, now)]


def fold_string_data(obj: Obj) -> None:
    """`stringData` is write-only: its entries are base64-encoded into `data`, as Kubernetes does."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


# -- strategies ---------------------------------------------------------------------------

class ConfigMapStrategy(KindStrategy):
    refs = (KindRef("", "ConfigMap"),)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_configmap(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_configmap_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_configmap()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_configmap(obj, now)


class SecretStrategy(KindStrategy):
    refs = (KindRef("", "Secret"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_secret(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_secret(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_secret_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_secret()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_secret(obj, now)

    def canonicalize(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        fold_string_data(obj)


class ServiceAccountStrategy(KindStrategy):
    refs = (KindRef("", "ServiceAccount"),)
    delete_returns_object = True

    def answer_subresource(self, info: ResourceInfo, subresource: str, obj: Obj, body: Obj,
                           ctx: Any) -> Obj | None:
        """`serviceaccounts/<name>/token`: a TokenRequest answered with a signed token
        (`ctx`: an `api.serviceaccounts.TokenIssuer`)."""
        if subresource != "token":
            return None
        return serviceaccounts.issue_token(obj, body, ctx)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_service_account(info, obj)
