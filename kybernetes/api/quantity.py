"""Resource quantities ("100m", "1Gi", 2): parsing to exact numbers. Kept apart from
validation so that components which only read quantities (the scheduler) need not load
the API schemas."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

QUANTITY_REGEX_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "n": Decimal("1e-9"), "u": Decimal("1e-6"),
    "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
}


def parse_quantity(value: Any) -> Decimal | None:
    """The numeric value of a resource quantity ("100m", "1Gi", 2), or None if unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY_RE.match(value.strip())
    if not m:
        return None
    number, suffix = m.groups()
    digits = number.lstrip("+-")
    if digits.count(".") > 1 or not any(ch.isdigit() for ch in digits):
        return None
    try:
        base = Decimal(number)
    except InvalidOperation:
        return None
    if suffix in _SUFFIXES:
        return base * _SUFFIXES[suffix]
    if suffix[0] in "eE" and re.match(r"^[+-]?[0-9]+$", suffix[1:]):
        return base * (Decimal(10) ** int(suffix[1:]))
    return None


