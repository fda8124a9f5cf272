"""Status objects serialize with kube-apiserver's key order and omitted empty fields."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from kybernetes.api.errors import ApiError, invalid, required
from kybernetes.api.registry import Registry
from kybernetes.apiserver.flowcontrol import too_many_requests
from kybernetes.apiserver.rest import success_status

SAMPLES = Path("/work/shared/compat/samples/wire-1.28")


def _compact(path: Path) -> bytes:
    # json keeps the file's key order; the separators match orjson's compact output.
    return json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode()


@pytest.mark.skipif(not SAMPLES.exists(), reason="wire samples not present")
def test_not_found_is_byte_identical_to_kube_apiserver() -> None:
    assert orjson.dumps(ApiError.not_found("", "configmaps", "nope").status()) == _compact(
        SAMPLES / "error-notfound.json")


@pytest.mark.skipif(not SAMPLES.exists(), reason="wire samples not present")
def test_delete_success_status_matches_sample() -> None:
    sample = json.loads((SAMPLES / "configmap-delete.json").read_text())
    info = Registry().get("", "v1", "configmaps")
    assert info is not None
    got = success_status(info, sample["details"]["name"], sample["details"]["uid"])
    assert got == _compact(SAMPLES / "configmap-delete.json")


def test_invalid_details_follow_status_details_field_order() -> None:
    err = ApiError.invalid("apps", "Deployment", "web", [invalid("spec.replicas", -1, "must be >= 0"),
                                                         required("spec.selector")])
    st = err.status()
    assert list(st) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert list(st["details"]) == ["name", "group", "kind", "causes"]
    assert [list(c) for c in st["details"]["causes"]] == [["reason", "message", "field"]] * 2


def test_details_given_in_any_order_are_reordered_and_empty_fields_dropped() -> None:
    err = ApiError(409, "Conflict", "x", {"causes": [{"field": "", "message": "m", "reason": "R"}],
                                          "kind": "pods", "name": "p", "group": ""})
    assert orjson.dumps(err.status()["details"]) == b'{"name":"p","kind":"pods","causes":[{"reason":"R","message":"m"}]}'


def test_too_many_requests_status_order() -> None:
    st = too_many_requests(3).status()
    assert list(st) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert st["details"] == {"retryAfterSeconds": 3} and st["code"] == 429


def test_status_write_takes_labels_and_annotations_but_not_spec() -> None:
    from kybernetes.api.kinds.base import StatusWrite

    old = {"metadata": {"name": "a", "annotations": {"x": "1"}, "finalizers": ["f"]}, "spec": {"n": 1}}
    new = {"metadata": {"name": "a", "annotations": {"x": "1", "patched": "true"}, "labels": {"l": "v"},
                        "finalizers": []}, "spec": {"n": 2}, "status": {"ok": True}}
    merged = StatusWrite().merge(old, new, managed_done=False)
    assert merged["metadata"]["annotations"] == {"x": "1", "patched": "true"}
    assert merged["metadata"]["labels"] == {"l": "v"}
    # Finalizers and owner references too: upstream's status strategies of most kinds reset
    # only the spec (the CRD finalizer controller drops its finalizer through /status).
    assert merged["metadata"]["finalizers"] == [] and merged["spec"] == {"n": 1}
    assert merged["status"] == {"ok": True}
    # Custom resources keep all stored metadata (upstream's ResetObjectMetaForStatus).
    kept = StatusWrite(metadata_from_new=()).merge(old, new, managed_done=False)
    assert kept["metadata"] == old["metadata"]
