"""Which default service accounts the service account controller creates."""

from __future__ import annotations

from typing import Any

from kybernetes.controllers.serviceaccount import missing_accounts, namespace_active


def ns(phase: str = "Active", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "team"}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


def test_default_created_only_where_missing_in_active_namespaces() -> None:
    assert missing_accounts(ns(), []) == ["default"]
    assert missing_accounts(ns(), ["builder", "default"]) == []
    assert missing_accounts(ns(), ["builder"], wanted=["default", "builder"]) == ["default"]


def test_terminating_or_unknown_namespaces_get_nothing() -> None:
    assert not namespace_active(ns(phase="Terminating"))
    assert missing_accounts(ns(deleting=True), []) == []
    assert missing_accounts(ns(phase="Terminating"), []) == []
    assert missing_accounts(None, []) == []
