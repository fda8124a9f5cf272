"""Label and field selectors: grammar, matching, errors and rendering."""

from __future__ import annotations

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.selectors import (
    format_labels,
    label_selector_to_string,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
    selector_from_set,
)

WEB = {"app": "web", "tier": "front", "rank": "7"}
DB = {"app": "db", "tier": "back"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize("text,web,db,bare", [
    ("app=web", True, False, False),
    ("app==web", True, False, False),
    ("app!=web", False, True, True),
    ("app in (web, db)", True, True, False),
    ("app in (web)", True, False, False),
    ("app notin (web)", False, True, True),
    ("tier", True, True, False),
    ("!tier", False, False, True),
    ("app=web,tier=front", True, False, False),
    ("app=web,tier=back", False, False, False),
    ("  app = web ,  !missing ", True, False, False),
    ("rank>5", True, False, False),
    ("rank<5", False, False, False),
    ("app=", False, False, False),
    ("app in (,web)", True, False, False),
    ("in in (in),notin", False, False, False),
    ("", True, True, True),
])
def test_label_selector_operators(text: str, web: bool, db: bool, bare: bool) -> None:
    sel = parse_label_selector(text)
    assert (sel.matches(WEB), sel.matches(DB), sel.matches(BARE)) == (web, db, bare)


def test_empty_selector_and_none_labels() -> None:
    assert parse_label_selector("").empty
    assert parse_label_selector(None).empty
    assert not parse_label_selector("a").empty
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


def test_label_selector_string_is_canonical() -> None:
    sel = parse_label_selector("z=1, env in (prod,dev,dev), !canary, b notin (y,x), k, v==2, n!=3")
    assert str(sel) == "b notin (x,y),!canary,env in (dev,prod),k,n!=3,v==2,z=1"
    assert str(parse_label_selector("x in ()")) == "x in ()"
    assert parse_label_selector("app=web,tier in (a)").requires_exact_match("tier") == "a"
    assert parse_label_selector("app!=web").requires_exact_match("app") is None


QUALIFIED = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
             "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
             "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


@pytest.mark.parametrize("text,message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a@b=c", 'unable to parse requirement: <nil>: Invalid value: "a@b": ' + QUALIFIED),
    ("-x", 'unable to parse requirement: <nil>: Invalid value: "-x": ' + QUALIFIED),
    ("a/b/c", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of"),
    ("Example.com/a", 'unable to parse requirement: <nil>: Invalid value: "Example.com/a": prefix part a lowercase'),
    ("a=" + "v" * 64, "unable to parse requirement: values[0][a]: Invalid value: \"" + "v" * 64
     + "\": must be no more than 63 characters"),
    ("a=b@c", 'unable to parse requirement: values[0][a]: Invalid value: "b@c": a valid label must be'),
    ("a>b", 'unable to parse requirement: values[0]: Invalid value: "b": for \'Gt\', \'Lt\' operators'),
    ("a=!b", "unable to parse requirement: found '!', expected: identifier"),
])
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(text)
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    assert err.value.message.startswith(message), err.value.message


def test_label_selector_object() -> None:
    sel = selector_from_label_selector_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]},
                             {"key": "canary", "operator": "DoesNotExist"},
                             {"key": "rank", "operator": "Exists"},
                             {"key": "zone", "operator": "NotIn", "values": ["b"]}]})
    assert sel.matches(WEB)
    assert not sel.matches({**WEB, "canary": "1"})
    assert not sel.matches({**WEB, "zone": "b"})
    assert not sel.matches(DB)
    assert str(sel) == "app=web,!canary,rank,tier in (edge,front),zone notin (b)"
    # A missing selector selects nothing; an empty one selects everything.
    assert not selector_from_label_selector_object(None).matches(WEB)
    assert not selector_from_label_selector_object(None).empty
    assert selector_from_label_selector_object({}).matches(BARE)
    assert selector_from_label_selector_object({}).empty


@pytest.mark.parametrize("sel,fragment", [
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists and does not exist"),
    ({"matchLabels": {"bad key": "x"}}, 'key: Invalid value: "bad key"'),
    ({"matchLabels": {"a": "bad value"}}, 'values[0][a]: Invalid value: "bad value"'),
])
def test_label_selector_object_errors(sel: dict, fragment: str) -> None:
    with pytest.raises(ApiError) as err:
        selector_from_label_selector_object(sel)
    assert err.value.code == 400
    assert fragment in err.value.message


def test_label_selector_to_string() -> None:
    assert label_selector_to_string({"matchLabels": {"app": "web"}}) == "app=web"
    assert label_selector_to_string({"matchLabels": {"b": "2", "a": "1"},
                                     "matchExpressions": [{"key": "c", "operator": "NotIn", "values": ["z", "y"]},
                                                          {"key": "d", "operator": "DoesNotExist"}]}) == \
        "a=1,b=2,c notin (y,z),!d"
    assert label_selector_to_string({}) == ""
    assert label_selector_to_string(None) == ""
    # The string form parses back to an equivalent selector.
    text = label_selector_to_string({"matchLabels": {"app": "web"},
                                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]})
    assert parse_label_selector(text).matches(WEB) and not parse_label_selector(text).matches(DB)


def test_selector_from_set_and_format_labels() -> None:
    assert str(selector_from_set({"b": "2", "a": "1"})) == "a=1,b=2"
    assert selector_from_set({}).matches(BARE)
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"


# -- field selectors ------------------------------------------------------------------------------

POD_FIELDS = {"spec.nodeName", "status.phase", "spec.hostNetwork", "spec.restartPolicy"}
POD = {"metadata": {"name": "web-1", "namespace": "default"},
       "spec": {"nodeName": "n1", "restartPolicy": "Always"},
       "status": {"phase": "Running"}}


@pytest.mark.parametrize("text,expected", [
    ("metadata.name=web-1", True),
    ("metadata.name==web-1", True),
    ("metadata.name!=web-1", False),
    ("metadata.namespace=default,status.phase=Running", True),
    ("spec.nodeName=n2", False),
    ("spec.nodeName!=", True),
    ("spec.hostNetwork=false", True),
    ("spec.hostNetwork=true", False),
    ("status.phase=", False),
    ("", True),
    (",", True),
])
def test_field_selector_matching(text: str, expected: bool) -> None:
    assert parse_field_selector(text, POD_FIELDS).matches(POD) is expected


def test_field_selector_missing_and_boolean_values() -> None:
    unscheduled = {"metadata": {"name": "p"}, "spec": {}, "status": {}}
    assert parse_field_selector("spec.nodeName=", POD_FIELDS).matches(unscheduled)
    assert not parse_field_selector("spec.nodeName!=", POD_FIELDS).matches(unscheduled)
    node = {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}}
    assert parse_field_selector("spec.unschedulable=true", {"spec.unschedulable"}).matches(node)
    assert parse_field_selector("spec.unschedulable=false", {"spec.unschedulable"}).matches({"metadata": {}})
    event = {"metadata": {"name": "e"}, "source": {"component": "kubelet"}, "count": 3}
    assert parse_field_selector("source=kubelet", {"source"}).matches(event)
    # An event written without a deprecated source is selected by its reporting component.
    reported = {"metadata": {"name": "e"}, "source": {}, "reportingComponent": "test-controller"}
    assert parse_field_selector("source=test-controller", {"source"}).matches(reported)
    assert not parse_field_selector("source=kubelet", {"source"}).matches(reported)


def test_field_selector_single_name_and_escapes() -> None:
    assert parse_field_selector("metadata.name=web", set()).single_name() == "web"
    assert parse_field_selector("metadata.name!=web", set()).single_name() is None
    assert parse_field_selector("status.phase=Running", POD_FIELDS).single_name() is None
    assert parse_field_selector("", set()).empty
    escaped = parse_field_selector(r"metadata.name=a\,b\=c", set())
    assert escaped.single_name() == "a,b=c"
    assert str(escaped) == r"metadata.name=a\,b\=c"


def test_field_selector_errors() -> None:
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.foo=x", set())
    assert err.value.code == 400
    assert err.value.message == '"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"'
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.foo=x", POD_FIELDS)
    assert err.value.message == "field label not supported: spec.foo"
    with pytest.raises(ApiError) as err:
        parse_field_selector("metadata.name", set())
    assert err.value.message == "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    with pytest.raises(ApiError) as err:
        parse_field_selector("metadata.name=a=b", set())
    assert err.value.code == 400 and "unescaped" in err.value.message
