"""events.k8s.io/v1 <-> core/v1 Event conversion (the core version is the stored one)."""

from __future__ import annotations

from kybernetes.api.kinds.events import convert_event

NEW = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
    "eventTime": "2024-01-02T03:04:05.000000Z", "reportingController": "ctl", "reportingInstance": "i",
    "action": "Act", "reason": "Why", "type": "Normal", "note": "text",
    "regarding": {"kind": "Pod", "name": "p"}, "related": {"kind": "Node", "name": "n"},
    "series": {"count": 3, "lastObservedTime": "2024-01-02T03:05:05.000000Z"},
    "deprecatedSource": {"component": "c"}, "deprecatedCount": 2,
    "deprecatedFirstTimestamp": "2024-01-02T03:04:05Z", "deprecatedLastTimestamp": "2024-01-02T03:05:05Z",
}


def test_new_api_event_converts_to_core_field_by_field():
    core = convert_event(NEW, "")
    assert core["apiVersion"] == "v1"
    assert core["involvedObject"] == NEW["regarding"] and core["related"] == NEW["related"]
    assert core["message"] == "text" and core["source"] == {"component": "c"} and core["count"] == 2
    assert core["firstTimestamp"] == NEW["deprecatedFirstTimestamp"]
    assert core["lastTimestamp"] == NEW["deprecatedLastTimestamp"]
    assert core["reportingComponent"] == "ctl" and core["reportingInstance"] == "i"
    assert core["series"] == NEW["series"] and core["eventTime"] == NEW["eventTime"]
    assert not {"regarding", "note", "deprecatedSource", "reportingController"} & core.keys()


def test_round_trip_keeps_every_field():
    assert convert_event(convert_event(NEW, ""), "events.k8s.io") == NEW


def test_core_event_without_new_fields_reads_with_go_zero_values():
    new = convert_event({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                         "involvedObject": {"kind": "Node", "name": "n"}, "reason": "R", "source": {},
                         "firstTimestamp": None, "lastTimestamp": None, "reportingComponent": "",
                         "reportingInstance": ""}, "events.k8s.io")
    assert new == {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                   "regarding": {"kind": "Node", "name": "n"}, "reason": "R", "deprecatedSource": {},
                   "deprecatedFirstTimestamp": None, "deprecatedLastTimestamp": None, "eventTime": None}
