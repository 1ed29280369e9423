"""Thai 13-digit citizen IDs: the mod-11 check digit and masking for logs (PDPA)."""

from __future__ import annotations

import operator
import re

_DIGITS_13 = re.compile(r"[0-9]{13}")  # ASCII only: \d and str.isdigit accept Thai digits
_VISIBLE_TAIL = 4


_WEIGHTS = tuple(range(13, 1, -1))
# Summing character codes counts ord("0") once per weight; subtract that back.
_ZERO_OFFSET = ord("0") * sum(_WEIGHTS)


def check_digit(first_twelve: str) -> int:
    """The 13th digit for the first twelve: (11 - sum(d[i] * (13 - i)) % 11) % 10."""
    total: int = sum(map(operator.mul, first_twelve.encode("ascii"), _WEIGHTS)) - _ZERO_OFFSET
    return (11 - total % 11) % 10


def citizen_id_problem(value: str) -> str | None:
    """Why `value` is not a valid citizen ID, or None when it is. IDs starting with 0 are valid."""
    if not _DIGITS_13.fullmatch(value):
        return "must be exactly 13 digits"
    expected = check_digit(value[:12])
    if int(value[12]) != expected:
        return f"check digit is {value[12]}, expected {expected} for the first 12 digits"
    return None


def with_check_digit(first_twelve: str) -> str:
    """Completes 12 digits into a valid citizen ID (used to make synthetic test data)."""
    return first_twelve + str(check_digit(first_twelve))


def mask_citizen_id(value: str) -> str:
    """Hides all but the last 4 characters, so logs can correlate without holding the ID."""
    if len(value) <= _VISIBLE_TAIL:
        return "*" * len(value)
    return "*" * (len(value) - _VISIBLE_TAIL) + value[-_VISIBLE_TAIL:]
