"""The agent's watched ConfigMaps and Secrets (agent/objectcache.py): what a pod names is
watched one object at a time, read from the watch, and a change wakes the pods naming it."""

from __future__ import annotations

import asyncio
from typing import Any

from kybernetes.agent.objectcache import ReferencedObjects, watched_references
from kybernetes.client.resources import CONFIGMAPS, SECRETS
from kybernetes.testing.fakes import FakeClient

NS = "apps"


def pod(name: str, configmap: str = "", secret: str = "") -> dict[str, Any]:
    volumes = [{"name": "cfg", "configMap": {"name": configmap}}] if configmap else []
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "p"}}}] if secret else []
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
            "spec": {"volumes": volumes, "containers": [{"name": "app", "image": "busybox", "env": env}],
                     "serviceAccountName": "default"}}


def configmap(name: str, value: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS}, "data": {"k": value}}


async def settle(objects: ReferencedObjects) -> None:
    """Until every watch has listed its object and the changes so far have arrived."""
    for _ in range(200):
        await asyncio.sleep(0.005)
        if all(objects.get("ConfigMap" if kind == "configmap" else "Secret", ns, name)[0]
               for kind, ns, name in objects.watched()):
            break
    for _ in range(5):
        await asyncio.sleep(0.005)


def test_only_configmaps_and_secrets_are_watched() -> None:
    refs = watched_references(pod("web", configmap="settings", secret="db"))
    assert refs == {("configmap", NS, "settings"), ("secret", NS, "db")}  # not the service account
    assert watched_references(None) == frozenset()


async def test_a_named_object_is_read_from_its_watch_and_its_change_wakes_the_pods_naming_it() -> None:
    client = FakeClient()
    client.add(CONFIGMAPS, configmap("settings", "1"), configmap("other", "x"))
    client.add(SECRETS, {"metadata": {"name": "db", "namespace": NS}, "data": {"p": "cw=="}})
    woken: list[str] = []
    objects = ReferencedObjects(client, woken.append)
    assert objects.get("ConfigMap", NS, "settings") == (False, None)  # not watched: ask the server
    objects.set_pod(f"{NS}/web", pod("web", configmap="settings", secret="db"))
    objects.set_pod(f"{NS}/api", pod("api", configmap="settings"))
    await settle(objects)
    assert objects.watched() == {("configmap", NS, "settings"), ("secret", NS, "db")}
    known, got = objects.get("ConfigMap", NS, "settings")
    assert known and got is not None and got["data"] == {"k": "1"}
    assert objects.get("Secret", NS, "db")[1]["data"] == {"p": "cw=="}
    assert woken == []  # the first listing is no change
    # One watch per object: a change to another ConfigMap wakes nobody.
    client.add(CONFIGMAPS, configmap("other", "y"))
    await settle(objects)
    assert woken == []
    client.add(CONFIGMAPS, configmap("settings", "2"))
    await settle(objects)
    assert sorted(woken) == [f"{NS}/api", f"{NS}/web"]
    assert objects.get("ConfigMap", NS, "settings")[1]["data"] == {"k": "2"}
    woken.clear()
    client.remove(SECRETS, NS, "db")
    await settle(objects)
    assert woken == [f"{NS}/web"] and objects.get("Secret", NS, "db") == (True, None)
    await objects.close()


async def test_an_object_named_before_it_exists_wakes_its_pod_when_it_appears() -> None:
    client = FakeClient()
    woken: list[str] = []
    objects = ReferencedObjects(client, woken.append)
    objects.set_pod(f"{NS}/web", pod("web", configmap="later"))
    await settle(objects)
    assert objects.get("ConfigMap", NS, "later") == (True, None)
    client.add(CONFIGMAPS, configmap("later", "1"))
    await settle(objects)
    assert woken == [f"{NS}/web"]
    await objects.close()


async def test_a_watch_ends_when_no_pod_names_its_object_any_more() -> None:
    client = FakeClient()
    client.add(CONFIGMAPS, configmap("settings", "1"), configmap("fresh", "1"))
    objects = ReferencedObjects(client, lambda _key: None)
    objects.set_pod(f"{NS}/web", pod("web", configmap="settings"))
    objects.set_pod(f"{NS}/api", pod("api", configmap="settings"))
    objects.set_pod(f"{NS}/web", None)
    assert objects.watched() == {("configmap", NS, "settings")}  # api still names it
    objects.set_pod(f"{NS}/api", pod("api", configmap="fresh"))  # its spec now names another
    assert objects.watched() == {("configmap", NS, "fresh")}
    objects.set_pod(f"{NS}/api", None)
    assert objects.watched() == set()
    await objects.close()
    assert objects.get("ConfigMap", NS, "fresh") == (False, None)
