"""kybernetes.api.cel: expressions as the CEL spec and Kubernetes' library evaluate them,
errors worded as kube-apiserver words them, and the evaluation budget."""

from __future__ import annotations

import pytest

from kybernetes.api import cel

ENV = cel.new_env(("object", "oldObject"))
DEPLOYMENT = {"metadata": {"name": "Web-1", "labels": {"app": "web"}},
              "spec": {"replicas": 3, "template": {"spec": {"containers": [
                  {"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "busybox:latest"}]}}}}


def run(text: str, obj: object = DEPLOYMENT, old: object = None) -> object:
    return cel.evaluate(cel.compile_expression(ENV, text), {"object": obj, "oldObject": old})


@pytest.mark.parametrize(("text", "want"), [
    ("object.spec.replicas <= 5", True),
    ("has(object.spec.paused)", False),
    ("has(object.metadata.labels) && object.metadata.labels.app == 'web'", True),
    ("object.spec.template.spec.containers.all(c, c.image.contains(':'))", True),
    ("object.spec.template.spec.containers.exists(c, c.image.endsWith(':latest'))", True),
    ("object.spec.template.spec.containers.exists_one(c, c.name == 'a')", True),
    ("object.spec.template.spec.containers.map(c, c.name)", ["a", "b"]),
    ("object.spec.template.spec.containers.filter(c, c.name == 'b').size()", 1),
    ("object.?spec.?paused.orValue(false)", False),
    ("object.metadata.?labels.app.orValue('')", "web"),
    ("oldObject == null", True),
    ("1u + 2u", 3),
    ("7 / 2", 3),
    ("7.0 / 2.0", 3.5),
    ("dyn(2) == 2.0", True),
    ("int('42') + 1", 43),
    ("timestamp('2024-01-01T00:00:00Z') + duration('90m') > timestamp('2024-01-01T01:00:00Z')", True),
    ("object.metadata.name.lowerAscii()", "web-1"),
    ("object.metadata.name.upperAscii()", "WEB-1"),
    ("'a,b,c'.split(',')", ["a", "b", "c"]),
    ("['a', 'b'].join('-')", "a-b"),
    ("'  x '.trim()", "x"),
    ("'abc'.replace('b', 'z')", "azc"),
    ("'abcd'.substring(1, 3)", "bc"),
    ("object.metadata.name.matches('^[A-Z]')", True),
    ("'v1.2.3'.find('[0-9]+')", "1"),
    ("'a1b22'.findAll('[0-9]+')", ["1", "22"]),
    ("[1, 2, 3].isSorted() && ![3, 1].isSorted()", True),
    ("[1, 2, 3].sum()", 6),
    ("[4, 2, 9].min()", 2),
    ("[4, 2, 9].max()", 9),
    ("[4, 2, 4].indexOf(4)", 0),
    ("[4, 2, 4].lastIndexOf(4)", 2),
    ("'abc'.indexOf('c')", 2),
    ("quantity('1Gi').isGreaterThan(quantity('500Mi'))", True),
    ("quantity('100m').add(quantity('1')).compareTo(quantity('1100m'))", 0),
    ("quantity('2k').asInteger()", 2000),
    ("isQuantity('1Zz')", False),
])
def test_expressions(text: str, want: object) -> None:
    assert run(text) == want


def test_compile_error_worded_as_upstream() -> None:
    with pytest.raises(cel.CelError) as e:
        cel.compile_expression(ENV, "object.spec.replicas <=")
    assert str(e.value).startswith("compilation failed: ERROR: <input>:1:")
    with pytest.raises(cel.CelError, match="undeclared reference to 'foo'"):
        cel.compile_expression(ENV, "foo == 1")


def test_too_long_expression_refused() -> None:
    with pytest.raises(cel.CelError, match="too long"):
        cel.compile_expression(ENV, "1 == 1 && " * 1000 + "true")


def test_runtime_errors_worded_as_cel_go() -> None:
    with pytest.raises(cel.CelError, match="no such key: nothing"):
        run("object.spec.nothing == 1")
    with pytest.raises(cel.CelError, match="division by zero"):
        run("1 / (object.spec.replicas - 3) == 1")


def test_hostile_expression_stops_at_the_budget() -> None:
    big = {"items": list(range(1000))}
    with pytest.raises(cel.CostExceeded, match="actual cost limit exceeded"):
        run("object.items.all(x, object.items.all(y, object.items.all(z, x + y + z >= 0)))", big)


def test_integers_beyond_int64_still_evaluate() -> None:
    act = cel.activation(ENV, {"object": {"n": 2**70}, "oldObject": None})
    assert cel.evaluate(cel.compile_expression(ENV, "object.n > 1.0"), act) is True


def test_authorizer_checks_the_bound_decision() -> None:
    env = cel.new_env(("authorizer",))
    program = cel.compile_expression(
        env, "authorizer.group('apps').resource('deployments').namespace('ns').check('create').allowed()")
    seen = []

    def decide(attrs: dict) -> tuple[bool, str]:
        seen.append(attrs)
        return attrs["verb"] == "create", "ok"

    with cel.authorizing(decide):
        assert cel.evaluate(program, {"authorizer": cel.authorizer_value()}) is True
    assert seen[0]["group"] == "apps" and seen[0]["resource"] == "deployments" and seen[0]["namespace"] == "ns"
