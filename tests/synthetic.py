"""Synthetic test data: valid-but-fake citizen IDs and households on real village codes.

Nothing here is a real person: IDs are built from counters or random digits with a computed check
digit.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from services.contracts.citizen_id import with_check_digit
from services.contracts.indicators import indicator_set_for
from tools.demo.citizen_ids import synthetic_citizen_id

SURVEY_YEAR = 2561
# Real DOPA village codes (Mukdahan, province 49) from the gazetteer.
VILLAGES = ("49010101", "49010102", "49020301", "49050601")


def citizen_id(n: int) -> str:
    """The n-th synthetic citizen ID (`tools/demo/citizen_ids.py`, shared with the demo
    population): it starts with 9, which is not a category of Thai citizen ID (categories are
    0-8), so it can never be a real person's."""
    return synthetic_citizen_id(n)


def household(**overrides: Any) -> dict[str, Any]:
    """A valid BMN household as an agency would send it (JSON-ready)."""
    record: dict[str, Any] = {
        "household_id": "49-0001",
        "survey_year": SURVEY_YEAR,
        "village_code": VILLAGES[0],
        "house_no": "12/3 หมู่ 1",
        "surveyed_on": "2018-03-15",
        "income_per_capita_baht": 30_000,
        "happiness_score": 7.5,
        "indicators": {"4": "pass", "8": "fail", "22": "fail"},
        "members": [
            {
                "citizen_id": citizen_id(1),
                "age": 42,
                "sex": "F",
                "indicators": {"20": "pass", "7": "fail"},
            },
            {
                "citizen_id": citizen_id(2),
                "age": 67,
                "sex": "M",
                "disabled": True,
                "indicators": {"21": "fail"},
            },
            {
                "citizen_id": citizen_id(3),
                "age": 4,
                "sex": "F",
                "indicators": {"15": "pass", "1": "na"},
            },
        ],
    }
    record.update(overrides)
    return record


citizen_ids = st.text("0123456789", min_size=12, max_size=12).map(with_check_digit)
results = st.sampled_from(["pass", "fail", "na"])


@st.composite
def valid_households(draw: st.DrawFn) -> dict[str, Any]:
    """Any household the contract must accept: units, age ranges and income all consistent."""
    indicator_set = indicator_set_for(SURVEY_YEAR)
    assert indicator_set is not None
    household_units = [i for i in indicator_set.indicators if i.unit == "household"]
    person_units = [i for i in indicator_set.indicators if i.unit == "person"]
    income = draw(st.none() | st.floats(min_value=0, max_value=1_000_000, allow_nan=False))
    household_results = {
        str(i.number): draw(results)
        for i in household_units
        if draw(st.booleans()) and i.number != 22
    }
    if income is not None and draw(st.booleans()):
        household_results["22"] = "fail" if income < indicator_set.income_threshold_baht else "pass"
    ids = draw(st.lists(citizen_ids, min_size=1, max_size=8, unique=True))
    members = []
    for cid in ids:
        age = draw(st.integers(0, 130))
        members.append(
            {
                "citizen_id": cid,
                "age": age,
                "sex": draw(st.sampled_from(["M", "F"])),
                "disabled": draw(st.booleans()),
                "indicators": {
                    str(i.number): draw(results) if i.applies_to_age(age) else "na"
                    for i in person_units
                    if draw(st.booleans())
                },
            }
        )
    return {
        "household_id": draw(st.from_regex(r"[0-9A-Za-z][0-9A-Za-z_.:/-]{0,39}", fullmatch=True)),
        "survey_year": draw(st.integers(2560, 2565)),
        "village_code": draw(st.sampled_from(VILLAGES)),
        "income_per_capita_baht": income,
        "indicators": household_results,
        "members": members,
        "source": draw(st.sampled_from(["bmn", "field"])),
    }
