"""The wire format of Kubernetes timestamps: `metav1.Time` (whole seconds, `Z`) and
`metav1.MicroTime` (six fractional digits), written and read in one place so every
component stamps objects the same way."""

from __future__ import annotations

import datetime as dt
from typing import Any

_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def rfc3339(t: dt.datetime) -> str:
    """`t` as a `metav1.Time` string; a naive `t` is taken as local time, like `astimezone` does."""
    return t.astimezone(dt.UTC).strftime(_SECONDS)


def rfc3339_micro(t: dt.datetime) -> str:
    """`t` as a `metav1.MicroTime` string; always six fractional digits, as the Go server writes."""
    return t.astimezone(dt.UTC).strftime(_MICRO)


def now_rfc3339() -> str:
    return rfc3339(dt.datetime.now(dt.UTC))


def now_micro() -> str:
    return rfc3339_micro(dt.datetime.now(dt.UTC))


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None when missing, not a string or malformed.

    A value without an offset is read as UTC: the API never sends one, and an aware
    result keeps arithmetic against `now` from raising on hand-written objects."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
