"""The typed seams hold: every implementation of a Protocol (the real client, informer,
informer factory and CRI client, and the test fakes) offers each of its methods with
the same parameters, so a component annotated with the Protocol works with any of them."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from kybernetes.agent.cri.client import CriClient
from kybernetes.agent.cri.protocol import Runtime
from kybernetes.client import ApiClient, Informer, InformerFactory
from kybernetes.client.protocols import Cache, Client, Informers, SharedInformer
from kybernetes.testing import fakes


def _members(proto: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(proto.__mro__):
        if klass is object or klass.__name__ in ("Protocol", "Generic"):
            continue
        for name, value in vars(klass).items():
            if callable(value) and not name.startswith("_"):
                out[name] = value
    return out


def mismatches(proto: type, impl: type) -> list[str]:
    """How `impl` departs from `proto`: missing methods, async where sync is expected (or
    the reverse), and parameters missing, renamed, reordered or with other defaults.
    Extra parameters with defaults are allowed."""
    out = []
    for name, want in _members(proto).items():
        have = getattr(impl, name, None)
        if have is None:
            out.append(f"{name}: missing")
            continue
        if inspect.iscoroutinefunction(want) != inspect.iscoroutinefunction(have) and \
                not inspect.isasyncgenfunction(have):
            out.append(f"{name}: async differs")
        wp = list(inspect.signature(want).parameters.values())
        hp = list(inspect.signature(have).parameters.values())
        for i, p in enumerate(wp):
            if i >= len(hp):
                out.append(f"{name}: lacks {p.name}")
                continue
            q = hp[i]
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                q = next((x for x in hp if x.name == p.name), None)
                if q is None or q.kind is not inspect.Parameter.KEYWORD_ONLY:
                    out.append(f"{name}: keyword {p.name}")
                    continue
            if q.name != p.name:
                out.append(f"{name}: parameter {i} is {q.name}, not {p.name}")
            elif p.default is not inspect.Parameter.empty and p.default is not Ellipsis and q.default != p.default:
                out.append(f"{name}: {p.name} defaults to {q.default!r}, not {p.default!r}")
        for q in hp[len(wp):]:
            if q.default is inspect.Parameter.empty and q.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                       inspect.Parameter.VAR_KEYWORD):
                out.append(f"{name}: extra required {q.name}")
    return out


@pytest.mark.parametrize(("proto", "impl"), [
    (Client, ApiClient), (Client, fakes.FakeClient),
    (SharedInformer, Informer), (SharedInformer, fakes.FakeInformer), (Cache, fakes.FakeInformer),
    (Informers, InformerFactory), (Informers, fakes.FakeInformers),
    (Runtime, CriClient),
])
def test_implementation_keeps_the_protocol(proto: type, impl: type) -> None:
    assert mismatches(proto, impl) == []


def test_the_check_catches_a_departure() -> None:
    class Renamed:
        async def get(self, resource, namespace, name, subresource=""):
            ...

    class SyncGet:
        def get(self, res, namespace, name, subresource=""):
            ...

    assert "get: parameter 1 is resource, not res" in mismatches(Client, Renamed)
    assert "list: missing" in mismatches(Client, Renamed)
    assert "get: async differs" in mismatches(Client, SyncGet)
