import datetime as dt
import re

import pytest

from kybernetes.api import timefmt

T = dt.datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=dt.UTC)


def test_rfc3339_drops_fraction_and_ends_in_z() -> None:
    assert timefmt.rfc3339(T) == "2026-01-02T03:04:05Z"


def test_rfc3339_micro_always_six_digits() -> None:
    assert timefmt.rfc3339_micro(T) == "2026-01-02T03:04:05.000120Z"
    assert timefmt.rfc3339_micro(T.replace(microsecond=0)) == "2026-01-02T03:04:05.000000Z"


def test_formatting_converts_other_offsets_to_utc() -> None:
    plus_two = dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert timefmt.rfc3339(plus_two) == "2026-01-02T03:04:05Z"
    assert timefmt.rfc3339_micro(plus_two) == "2026-01-02T03:04:05.000000Z"


def test_now_helpers_have_wire_shape_and_are_current() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp, micro = timefmt.now_rfc3339(), timefmt.now_micro()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", micro)
    after = dt.datetime.now(dt.UTC)
    for value in (stamp, micro):
        parsed = timefmt.parse_time(value)
        assert parsed is not None and before <= parsed <= after


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-02T03:04:05Z", T.replace(microsecond=0)),
    ("2026-01-02T03:04:05.000120Z", T),
    ("2026-01-02T03:04:05.12Z", T.replace(microsecond=120000)),
    ("2026-01-02T05:04:05+02:00", T.replace(microsecond=0)),
    ("2026-01-02T03:04:05", T.replace(microsecond=0)),
])
def test_parse_time_gives_aware_utc(text: str, expected: dt.datetime) -> None:
    parsed = timefmt.parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("value", [None, "", "garbage", "2026-13-01T00:00:00Z", 1700000000, ["2026-01-02T03:04:05Z"]])
def test_parse_time_rejects_missing_and_bad_values(value: object) -> None:
    assert timefmt.parse_time(value) is None


def test_round_trip_keeps_the_same_string() -> None:
    for text in ("2026-01-02T03:04:05Z", "1999-12-31T23:59:59Z"):
        parsed = timefmt.parse_time(text)
        assert parsed is not None and timefmt.rfc3339(parsed) == text
    micro = "2026-01-02T03:04:05.123456Z"
    parsed = timefmt.parse_time(micro)
    assert parsed is not None and timefmt.rfc3339_micro(parsed) == micro
