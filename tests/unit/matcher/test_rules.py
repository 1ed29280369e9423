"""The targeting rules (TPMAP-RULES.md sections 1-3), rule by rule, and against a naive reference."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.indicators import Dimension
from services.contracts.records import BmnHousehold, parse_record
from services.matcher.rules import (
    MemberOutcome,
    age_band,
    assess_household,
    household_outcome,
    is_deceased,
    person_class,
    record_order,
)
from tests.synthetic import citizen_id, household, valid_households

H, L, E, INC, A = (
    Dimension.HEALTH,
    Dimension.LIVING,
    Dimension.EDUCATION,
    Dimension.INCOME,
    Dimension.ACCESS,
)


def assess(**overrides: Any) -> Any:
    return assess_household(parse_record(BmnHousehold, household(**overrides)))


def test_household_unit_indicator_takes_the_household_value() -> None:
    assessment = assess(indicators={"8": "fail", "9": "pass"}, income_per_capita_baht=None)
    assert assessment.statuses[7] == "fail"
    assert assessment.statuses[8] == "pass"
    assert assessment.statuses[9] == "na"  # missing means na
    # 8 is living; member 0 fails 7 (health); member 1 fails 21 (income)
    assert assessment.deprivation == {L, H, INC}


def test_person_unit_indicator_fails_if_any_member_fails_passes_if_some_pass() -> None:
    members = [
        {
            "citizen_id": citizen_id(1),
            "age": 30,
            "sex": "F",
            "indicators": {"20": "pass", "7": "pass"},
        },
        {
            "citizen_id": citizen_id(2),
            "age": 40,
            "sex": "M",
            "indicators": {"20": "fail", "7": "na"},
        },
        {"citizen_id": citizen_id(3), "age": 8, "sex": "M", "indicators": {"7": "na", "16": "na"}},
    ]
    assessment = assess(members=members, indicators={}, income_per_capita_baht=None)
    assert assessment.statuses[19] == "fail"  # 20: one fails
    assert assessment.statuses[6] == "pass"  # 7: one passes, none fails
    assert assessment.statuses[15] == "na"  # 16: only na
    assert assessment.deprivation == {INC}
    assert assessment.failed == [20]
    assert 16 not in assessment.applicable


@pytest.mark.parametrize(
    ("income", "expected"), [(37_999.99, "fail"), (38_000, "pass"), (0, "fail")]
)
def test_income_indicator_follows_the_threshold(income: float, expected: str) -> None:
    plain = [{"citizen_id": citizen_id(1), "age": 30, "sex": "F"}]
    assessment = assess(income_per_capita_baht=income, indicators={}, members=plain)
    assert assessment.statuses[21] == expected
    assert (INC in assessment.deprivation) is (expected == "fail")


def test_indicators_outside_tpmap_dimensions_deprive_nothing() -> None:
    members = [
        {
            "citizen_id": citizen_id(1),
            "age": 40,
            "sex": "F",
            "indicators": {"24": "fail", "6": "fail"},
        }
    ]
    assessment = assess(
        members=members, indicators={"12": "fail", "31": "fail"}, income_per_capita_baht=None
    )
    assert assessment.failed == [6, 12, 24, 31]
    assert assessment.deprivation == frozenset()
    assert not assessment.mpi_poor


@pytest.mark.parametrize(
    ("deprivation", "welfare", "deceased", "expected"),
    [
        (set(), "verified", False, "not_poor"),
        ({H}, "verified", False, "target"),
        ({H}, "registered", False, "registered_poor"),
        ({H}, None, False, "unregistered_poor"),
        ({H}, "rejected", False, "unregistered_poor"),
        ({H}, "withdrawn", False, "unregistered_poor"),
        ({H}, "verified", True, "deceased"),
        (set(), None, True, "deceased"),
    ],
)
def test_person_classes(
    deprivation: set[Dimension], welfare: Any, deceased: bool, expected: str
) -> None:
    assert person_class(frozenset(deprivation), welfare, deceased) == expected


@pytest.mark.parametrize(
    ("death", "year", "deceased"),
    [
        (date(2018, 6, 1), 2561, True),
        (date(2018, 6, 1), 2560, False),
        (date(2017, 12, 31), 2561, True),
        (None, 2561, False),
    ],
)
def test_deaths_count_from_their_buddhist_era_year(
    death: date | None, year: int, deceased: bool
) -> None:
    assert is_deceased(death, year) is deceased


def member(person: str, welfare: Any = "verified", vulnerable: bool = False) -> MemberOutcome:
    return MemberOutcome(person_class=person, welfare=welfare, vulnerable=vulnerable)  # type: ignore[arg-type]


def test_household_outcomes() -> None:
    outcome = household_outcome(
        frozenset({H, L}), [member("target"), member("unregistered_poor", None), member("deceased")]
    )
    assert (
        outcome.member_count,
        outcome.target_members,
        outcome.registered_members,
        outcome.unregistered_members,
    ) == (2, 1, 1, 1)
    assert outcome.target
    assert not outcome.nocard
    assert not outcome.crisis
    assert outcome.priority == 2_000


def test_nocard_household_is_mpi_poor_with_nobody_registered() -> None:
    assert household_outcome(frozenset({H}), [member("unregistered_poor", "rejected")]).nocard
    assert not household_outcome(frozenset({H}), [member("registered_poor", "registered")]).nocard
    assert not household_outcome(frozenset(), [member("not_poor", None)]).nocard


@pytest.mark.parametrize(
    ("deprivation", "vulnerable", "crisis"),
    [
        ({H, L, E}, False, True),
        ({H, L}, True, False),
        ({INC, L}, True, True),
        ({INC, L}, False, False),
        ({INC}, True, False),
    ],
)
def test_crisis_rule(deprivation: set[Dimension], vulnerable: bool, crisis: bool) -> None:
    outcome = household_outcome(frozenset(deprivation), [member("target", vulnerable=vulnerable)])
    assert outcome.crisis is crisis
    assert (outcome.priority >= 10_000) is crisis


def test_crisis_needs_a_target_household() -> None:
    assert not household_outcome(
        frozenset({H, L, E}), [member("registered_poor", "registered")]
    ).crisis


def test_a_deceased_vulnerable_member_does_not_make_a_crisis() -> None:
    outcome = household_outcome(
        frozenset({INC, L}), [member("target"), member("deceased", vulnerable=True)]
    )
    assert not outcome.crisis


@pytest.mark.parametrize(
    ("age", "band"),
    [(0, "0-5"), (5, "0-5"), (6, "6-14"), (14, "6-14"), (15, "15-59"), (59, "15-59"), (60, "60+")],
)
def test_age_bands(age: int, band: str) -> None:
    assert age_band(age) == band


def test_newer_survey_date_wins_and_ties_break_on_the_event_id() -> None:
    old = parse_record(BmnHousehold, household(surveyed_on="2018-03-01"))
    new = parse_record(BmnHousehold, household(surveyed_on="2018-04-01"))
    undated = parse_record(BmnHousehold, household(surveyed_on=None))
    assert record_order(new, "a") > record_order(old, "z")
    assert record_order(old, "a") > record_order(undated, "z")
    assert record_order(old, "b") > record_order(old, "a")


# --- an independent, naive reading of the rules -----------------------------------------------

NAIVE_DIMENSIONS = {
    1: "health",
    4: "health",
    5: "health",
    7: "health",
    8: "living",
    9: "living",
    10: "living",
    11: "living",
    15: "education",
    16: "education",
    17: "education",
    19: "education",
    20: "income",
    21: "income",
    22: "income",
    27: "access",
    28: "access",
}
HOUSEHOLD_UNIT = {4, 5, 8, 9, 10, 11, 12, 13, 14, 22, 23, 30, 31}


def naive_status(record: dict[str, Any], number: int) -> str:
    if number in HOUSEHOLD_UNIT:
        if number == 22 and record.get("income_per_capita_baht") is not None:
            return "fail" if record["income_per_capita_baht"] < 38000 else "pass"
        return record["indicators"].get(str(number), "na")
    values = [m["indicators"].get(str(number), "na") for m in record["members"]]
    if "fail" in values:
        return "fail"
    return "pass" if "pass" in values else "na"


def naive_deprivation(record: dict[str, Any]) -> set[str]:
    return {d for n, d in NAIVE_DIMENSIONS.items() if naive_status(record, n) == "fail"}


@settings(max_examples=300)
@given(
    valid_households(),
    st.lists(
        st.sampled_from([None, "registered", "verified", "rejected", "withdrawn"]),
        min_size=8,
        max_size=8,
    ),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_rules_agree_with_a_naive_reference(
    record: dict[str, Any], welfare: list[Any], dead: list[bool]
) -> None:
    parsed = parse_record(BmnHousehold, record)
    assessment = assess_household(parsed)
    expected = naive_deprivation(record)
    assert {d.value for d in assessment.deprivation} == expected
    assert assessment.failed == [n for n in range(1, 32) if naive_status(record, n) == "fail"]

    members = []
    for index, m in enumerate(record["members"]):
        if dead[index]:
            naive = "deceased"
        elif not expected:
            naive = "not_poor"
        else:
            naive = {"verified": "target", "registered": "registered_poor"}.get(
                welfare[index], "unregistered_poor"
            )
        assert person_class(assessment.deprivation, welfare[index], dead[index]) == naive
        members.append(
            (naive, welfare[index], m["age"] >= 60 or m["disabled"] or m.get("bedridden", False))
        )
    living = [m for m in members if m[0] != "deceased"]
    targets = sum(m[0] == "target" for m in living)
    registered = sum(m[1] in ("registered", "verified") for m in living)
    vulnerable = sum(m[2] for m in living)
    crisis = targets > 0 and (
        len(expected) >= 3 or ("income" in expected and len(expected) >= 2 and vulnerable > 0)
    )
    outcome = household_outcome(
        assessment.deprivation, [MemberOutcome(c, w, v) for c, w, v in members]
    )  # type: ignore[arg-type]
    assert (outcome.target, outcome.nocard, outcome.crisis) == (
        targets > 0,
        bool(expected) and registered == 0,
        crisis,
    )
    assert (outcome.member_count, outcome.target_members, outcome.registered_members) == (
        len(living),
        targets,
        registered,
    )
