"""Reporting's difference logic against a from-scratch recount written straight from
TPMAP-RULES.md section 4: random event streams with duplicates, replays and stale versions."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.areas import parent_chain
from services.contracts.events import HouseholdStatus, PersonStatus
from services.contracts.indicators import DIMENSIONS, Dimension
from services.reporting.contributions import (
    CARD_FILTERS,
    Ledger,
    deprivation_set,
    difference,
    figures,
    household_contribution,
    person_contribution,
)
from tests.synthetic import citizen_id
from tests.unit.reporting.recount import Recount, Status, final_states

# Two provinces, two districts in one, two villages in one subdistrict.
VILLAGES = ("49010101", "49010102", "49020301", "30010101")
YEARS = (2561, 2562)
MASKS = ("11111", "10000", "01010", "00111", "10001")
WELFARE = (None, "registered", "verified", "rejected", "withdrawn")


@st.composite
def person_statuses(draw: st.DrawFn, n: int, year: int, version: int) -> PersonStatus:
    person_class = draw(
        st.sampled_from(
            [
                "not_poor",
                "target",
                "registered_poor",
                "unregistered_poor",
                "deceased",
                "welfare_only",
                "removed",
            ]
        )
    )
    deprivation: list[Dimension] = []
    if person_class in ("target", "registered_poor", "unregistered_poor"):
        deprivation = draw(st.lists(st.sampled_from(DIMENSIONS), min_size=1, unique=True))
    elif person_class == "deceased":
        deprivation = draw(st.lists(st.sampled_from(DIMENSIONS), unique=True))
    welfare: str | None = {
        "target": "verified",
        "registered_poor": "registered",
        "unregistered_poor": draw(st.sampled_from([None, "rejected", "withdrawn"])),
        "welfare_only": "verified",
    }.get(person_class, draw(st.sampled_from(WELFARE)))
    applicable = draw(st.sets(st.integers(1, 31), max_size=6))
    failed = sorted(draw(st.sets(st.sampled_from(sorted(applicable)))) if applicable else set())
    village: str | None = draw(st.sampled_from(VILLAGES))
    if person_class == "welfare_only" and draw(st.booleans()):
        village = None
    return PersonStatus.model_validate(
        {
            "citizen_id": citizen_id(n),
            "survey_year": year,
            "household_id": None if person_class == "welfare_only" else f"hh-{n % 3}",
            "village_code": village,
            "person_class": person_class,
            "deprivation": [d for d in DIMENSIONS if d in deprivation],
            "failed_indicators": failed,
            "applicable_indicators": sorted(applicable),
            "welfare_status": welfare,
            "age_band": draw(st.sampled_from([None, "0-5", "6-14", "15-59", "60+"])),
            "disabled": draw(st.booleans()),
            "chronic_patient": draw(st.booleans()),
            "bedridden": draw(st.booleans()),
            "version": version,
        }
    )


@st.composite
def household_statuses(draw: st.DrawFn, n: int, year: int, version: int) -> HouseholdStatus:
    deprivation = draw(st.lists(st.sampled_from(DIMENSIONS), unique=True))
    registered = draw(st.integers(0, 3))
    target = bool(deprivation) and registered > 0 and draw(st.booleans())
    return HouseholdStatus(
        household_id=f"hh-{n}",
        survey_year=year,
        village_code=draw(st.sampled_from(VILLAGES)),
        source="bmn",
        deprivation=[d for d in DIMENSIONS if d in deprivation],
        failed_indicators=[],
        member_count=3,
        target_members=1 if target else 0,
        registered_members=registered,
        unregistered_members=3 - registered,
        vulnerable_members=0,
        mpi_poor=bool(deprivation),
        target=target,
        nocard=bool(deprivation) and registered == 0,
        crisis=target and draw(st.booleans()),
        priority=0,
        version=version,
    )


@st.composite
def streams(draw: st.DrawFn) -> list[Status]:
    """Versions 1..4 of a few persons and households, in any order, with duplicates: one content
    per key and version, as the matcher sends."""
    versions: list[Status] = []
    for n, year in product(range(6), YEARS):
        for version in range(1, draw(st.integers(0, 4)) + 1):
            versions.append(draw(person_statuses(n, year, version)))
    for n, year in product(range(3), YEARS):
        for version in range(1, draw(st.integers(0, 3)) + 1):
            versions.append(draw(household_statuses(n, year, version)))
    if not versions:
        return []
    stream = draw(st.permutations(versions))
    duplicates = draw(st.lists(st.sampled_from(versions), max_size=10))
    replay = draw(st.integers(0, len(stream)))
    # Duplicates anywhere, then a replay of a prefix of the stream at the end.
    mixed = list(stream)
    for duplicate in duplicates:
        mixed.insert(draw(st.integers(0, len(mixed))), duplicate)
    return mixed + list(stream[:replay])


AREAS = sorted({code for village in VILLAGES for code in parent_chain(village)})
ADDITIVE = (
    "households_surveyed",
    "persons_surveyed",
    "welfare_registered",
    "welfare_verified",
    "elderly",
    "disabled",
    "chronic_patients",
    "poor_households",
    "poor_persons",
    "poor_registered",
    "target_persons",
    "target_households",
    "nocard_poor_households",
    "crisis_households",
    "unregistered_poor",
    "welfare_only",
    "deceased",
)


@settings(max_examples=100, deadline=None)
@given(streams())
def test_differences_equal_a_recount_of_the_final_states(stream: list[Status]) -> None:
    ledger = Ledger()
    for status in stream:
        ledger.apply(status)
    states = final_states(stream)
    for year, area, mask, card in product(YEARS, AREAS, MASKS, CARD_FILTERS):
        live = figures(ledger.counters_of(year, area), mask, card)
        assert live == Recount(mask, card).figures(states, year, area), (year, area, mask, card)
        # Section 5's ordering holds per area and mask.
        assert live.target_persons <= live.poor_registered <= live.poor_persons
        assert live.poor_persons <= live.persons_surveyed


@settings(max_examples=50, deadline=None)
@given(streams())
def test_children_sum_to_their_parent(stream: list[Status]) -> None:
    ledger = Ledger()
    for status in stream:
        ledger.apply(status)
    for year, mask, card in product(YEARS, MASKS, CARD_FILTERS):
        by_area = {a: figures(ledger.counters_of(year, a), mask, card) for a in AREAS}
        for parent in AREAS:
            children = [
                a for a in AREAS if len(parent_chain(a)) >= 2 and parent_chain(a)[-2] == parent
            ]
            if not children:
                continue
            for name in ADDITIVE:
                assert getattr(by_area[parent], name) == sum(
                    getattr(by_area[c], name) for c in children
                ), (parent, name)
            parent_figures = by_area[parent]
            for i in range(1, 32):
                assert parent_figures.target_by_indicator[i] == sum(
                    by_area[c].target_by_indicator[i] for c in children
                )


def _person(**overrides: object) -> PersonStatus:
    values: dict[str, object] = {
        "citizen_id": citizen_id(1),
        "survey_year": 2561,
        "household_id": "hh-1",
        "village_code": "49010101",
        "person_class": "target",
        "deprivation": ["health", "income"],
        "failed_indicators": [1, 22],
        "applicable_indicators": [1, 8, 22],
        "welfare_status": "verified",
        "age_band": "60+",
        "version": 1,
    }
    values.update(overrides)
    return PersonStatus.model_validate(values)


def test_a_target_persons_contribution() -> None:
    contribution = person_contribution(_person())
    assert contribution.areas() == ("TH", "49", "4901", "490101", "49010101")
    assert dict(contribution.counters) == {
        "persons": 1,
        "welfare_registered": 1,
        "welfare_verified": 1,
        "elderly": 1,
        "ind_app:1": 1,
        "ind_app:8": 1,
        "ind_app:22": 1,
        "ind_fail:1": 1,
        "ind_fail:22": 1,
        "pp:10010:card": 1,
        "pt:10010:card": 1,
        "pti:10010:card:1": 1,
        "pti:10010:card:22": 1,
    }


def test_the_mask_follows_tpmaps_rule() -> None:
    """Under 10000 the target persons are those deprived in health; living counts 0; a failed
    indicator outside the mask still counts for the (fewer) target persons."""
    ledger = Ledger()
    ledger.apply(_person())
    ledger.apply(_person(citizen_id=citizen_id(2), deprivation=["living"], failed_indicators=[8]))
    counters = ledger.counters_of(2561, "49")
    headline = figures(counters)
    assert (headline.target_persons, headline.target_by_dimension["health"]) == (2, 1)
    health_only = figures(counters, "10000")
    assert health_only.target_persons == headline.target_by_dimension["health"] == 1
    assert health_only.target_by_dimension["living"] == 0
    assert health_only.target_by_indicator[22] == 1
    assert health_only.target_by_indicator[8] == 0
    assert pytest.approx(1 / 5) == health_only.mpi_target.A
    assert pytest.approx((2 + 1) / 10) == headline.mpi_target.A


def test_stale_and_repeated_versions_change_nothing() -> None:
    ledger = Ledger()
    assert ledger.apply(_person(version=2))
    before = dict(ledger.counters)
    assert not ledger.apply(_person(version=2, person_class="removed", deprivation=[]))
    assert not ledger.apply(_person(version=1, village_code="30010101"))
    assert dict(ledger.counters) == before


def test_a_move_subtracts_at_the_old_village() -> None:
    old = household_contribution(
        HouseholdStatus(
            household_id="hh-1",
            survey_year=2561,
            village_code="49010101",
            source="bmn",
            deprivation=[Dimension.INCOME],
            failed_indicators=[22],
            member_count=2,
            target_members=0,
            registered_members=0,
            unregistered_members=2,
            vulnerable_members=0,
            mpi_poor=True,
            target=False,
            nocard=True,
            crisis=False,
            priority=1000,
            version=1,
        )
    )
    new = person_contribution(_person(village_code="49010102"))
    delta = difference(old, new)
    assert delta[("49010101", "households")] == -1
    assert delta[("49010101", "hp:00010:nocard")] == -1
    assert ("TH", "persons") in delta
    assert deprivation_set([Dimension.ACCESS, Dimension.HEALTH]) == "10001"


def test_bad_queries_are_refused() -> None:
    with pytest.raises(ValueError, match="mask"):
        figures({}, "1111")
    with pytest.raises(ValueError, match="card"):
        figures({}, "11111", "some")  # type: ignore[arg-type]
