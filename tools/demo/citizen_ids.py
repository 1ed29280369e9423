"""Synthetic citizen IDs: valid (13 digits, mod-11 check digit) but never a real person's.

Every synthetic ID starts with 9, which is not a category of Thai citizen ID (categories are
0-8), so it can be told apart from a real one at a glance. The tests and the demo population use
the same numbering: the n-th ID is 9, n as 11 digits, and the check digit.
"""

from __future__ import annotations

from services.contracts.citizen_id import citizen_id_problem, with_check_digit

SYNTHETIC_PREFIX = "9"
_SERIAL_DIGITS = 11
MAX_SERIAL = 10**_SERIAL_DIGITS - 1


def synthetic_citizen_id(serial: int) -> str:
    """The `serial`-th synthetic citizen ID (0 <= serial <= MAX_SERIAL)."""
    if not 0 <= serial <= MAX_SERIAL:
        msg = f"serial must be 0..{MAX_SERIAL}, got {serial}"
        raise ValueError(msg)
    return with_check_digit(f"{SYNTHETIC_PREFIX}{serial:0{_SERIAL_DIGITS}d}")


def is_synthetic_citizen_id(value: str) -> bool:
    """A valid citizen ID in the synthetic range."""
    return value.startswith(SYNTHETIC_PREFIX) and citizen_id_problem(value) is None
