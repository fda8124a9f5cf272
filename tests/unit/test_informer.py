"""Pure helpers of the informer module (the informer itself runs against a real server in
tests/e2e/test_client_library.py)."""

from __future__ import annotations

import orjson

from kybernetes.api.interning import intern_strings
from kybernetes.client.informer import namespace_index, object_key, owner_index


def test_intern_strings_shares_equal_values():
    a = orjson.loads(b'{"s": {"phase": "Running"}, "l": ["x", {"t": "2026-11-25T20:00:00Z"}], "n": 1}')
    b = orjson.loads(b'{"s": {"phase": "Running"}, "l": ["x", {"t": "2026-11-25T20:00:00Z"}], "n": 1}')
    assert a["s"]["phase"] is not b["s"]["phase"]
    intern_strings(a)
    intern_strings(b)
    assert a == b and a["s"]["phase"] is b["s"]["phase"] and a["l"][1]["t"] is b["l"][1]["t"]


def test_keys_and_indexes():
    pod = {"metadata": {"name": "p", "namespace": "ns",
                        "ownerReferences": [{"uid": "a", "controller": True}, {"uid": "b"}]}}
    assert object_key(pod) == "ns/p"
    assert object_key({"metadata": {"name": "n"}}) == "n"
    assert namespace_index(pod) == ["ns"]
    assert owner_index(pod) == ["a"]
