"""What a CRD's versions become in the registry: which version each names as its storage,
and whether its reads convert (several versions: objects may be stored in any of them)."""

from __future__ import annotations

from kybernetes.apiserver.crds import resource_infos


def crd(*versions: tuple[str, bool, bool]) -> dict:
    return {"metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                     "versions": [{"name": n, "served": served, "storage": storage}
                                  for n, served, storage in versions]}}


def test_the_other_versions_name_the_storage_version():
    infos = {i.version: i for i in resource_infos(crd(("v1", True, True), ("v2", True, False)))}
    assert (infos["v1"].storage_version, infos["v1"].stored_elsewhere) == ("", False)
    assert (infos["v2"].storage_version, infos["v2"].stored_elsewhere) == ("v1", True)
    assert all(i.extra["mixed_versions"] for i in infos.values())


def test_one_version_converts_nothing():
    (info,) = resource_infos(crd(("v1", True, True)))
    assert info.storage_version == "" and not info.extra["mixed_versions"]


def test_an_unserved_storage_version_is_not_named_and_not_registered():
    infos = resource_infos(crd(("v1", False, True), ("v2", True, False)))
    assert [(i.version, i.storage_version) for i in infos] == [("v2", "")]
    assert infos[0].extra["mixed_versions"]
