"""The case rules (services/logbook/cases.py): pure, checked against a plain reading of the issue
over any sequence of household statuses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.contracts.events import HouseholdStatus
from services.contracts.indicators import DIMENSIONS, Dimension
from services.logbook.cases import (
    CaseState,
    case_id,
    case_progress,
    deprivation_bits,
    dimensions_of,
    is_newer,
    next_case,
    qualifying_reason,
)


def status(*, target: bool, mpi_poor: bool, unregistered: int, version: int = 1) -> HouseholdStatus:
    deprivation = [Dimension.INCOME] if mpi_poor else []
    return HouseholdStatus(
        household_id="h1",
        survey_year=2561,
        village_code="49010101",
        source="bmn",
        deprivation=deprivation,
        failed_indicators=[22] if mpi_poor else [],
        member_count=3,
        target_members=1 if target else 0,
        registered_members=1 if target else 0,
        unregistered_members=unregistered,
        vulnerable_members=0,
        mpi_poor=mpi_poor,
        target=target and mpi_poor,
        nocard=False,
        crisis=False,
        priority=1,
        version=version,
    )


statuses = st.builds(
    lambda target, poor, unregistered: status(
        target=target, mpi_poor=poor, unregistered=unregistered
    ),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
)


def test_target_household_gets_a_target_case() -> None:
    change = next_case(None, status(target=True, mpi_poor=True, unregistered=0))
    assert change is not None
    assert change.state == CaseState("target", "open")
    assert change.opened


def test_poor_household_with_unregistered_members_gets_an_outreach_case() -> None:
    change = next_case(None, status(target=False, mpi_poor=True, unregistered=2))
    assert change is not None
    assert change.state == CaseState("outreach", "open")


def test_households_that_do_not_qualify_get_no_case() -> None:
    assert next_case(None, status(target=False, mpi_poor=True, unregistered=0)) is None
    assert next_case(None, status(target=False, mpi_poor=False, unregistered=2)) is None


def test_a_target_case_is_marked_not_deleted_and_reopened() -> None:
    open_case = CaseState("target", "open")
    dropped = next_case(open_case, status(target=False, mpi_poor=True, unregistered=1))
    assert dropped is not None
    assert dropped.state == CaseState("target", "no_longer_target")
    assert dropped.status_changed
    assert not dropped.opened
    back = next_case(dropped.state, status(target=True, mpi_poor=True, unregistered=0))
    assert back is not None
    assert back.state == open_case


def test_outreach_that_worked_becomes_a_target_case() -> None:
    change = next_case(
        CaseState("outreach", "open"), status(target=True, mpi_poor=True, unregistered=0)
    )
    assert change is not None
    assert change.state == CaseState("target", "open")
    assert change.opened
    assert not change.status_changed


def test_a_closed_case_stays_closed() -> None:
    closed = CaseState("target", "closed")
    for target in (True, False):
        assert next_case(closed, status(target=target, mpi_poor=True, unregistered=0)) is None


@given(st.lists(statuses, min_size=1, max_size=12))
def test_any_history_ends_where_the_rules_say(history: list[HouseholdStatus]) -> None:
    state: CaseState | None = None
    for item in history:
        change = next_case(state, item)
        if change is not None:
            assert change.state != state or change.opened
            state = change.state
    reasons = [qualifying_reason(s) for s in history]
    if all(r is None for r in reasons):
        assert state is None
        return
    # Once opened a case exists for good; it is a target case once the household was target.
    assert state is not None
    assert (state.reason == "target") == ("target" in reasons)
    now = reasons[-1]
    still = now == "target" if state.reason == "target" else now is not None
    assert state.status == ("open" if still else "no_longer_target")


@given(st.lists(statuses, min_size=1, max_size=8), st.data())
def test_a_status_applied_again_changes_nothing(
    history: list[HouseholdStatus], data: st.DataObject
) -> None:
    state: CaseState | None = None
    for item in history:
        change = next_case(state, item)
        state = change.state if change else state
    again = data.draw(st.sampled_from(history[-1:]))
    assert next_case(state, again) is None or state is None


def test_versions() -> None:
    assert is_newer(None, 1)
    assert is_newer(1, 2)
    assert not is_newer(2, 2)
    assert not is_newer(3, 2)


def test_case_ids_are_stable_and_distinct() -> None:
    assert case_id("h1", 2561) == case_id("h1", 2561)
    assert case_id("h1", 2561) != case_id("h1", 2562)
    assert case_id("h1", 2561).startswith("c")
    assert len(case_id("h1", 2561)) == 21


@given(st.sets(st.sampled_from(DIMENSIONS)))
def test_deprivation_bits_round_trip(dimensions: set[Dimension]) -> None:
    assert set(dimensions_of(deprivation_bits(list(dimensions)))) == dimensions


def test_progress() -> None:
    deprived = [Dimension.INCOME, Dimension.LIVING]
    assert case_progress(deprived, {}, has_interventions=False) == "not_started"
    assert case_progress(deprived, {}, has_interventions=True) == "in_progress"
    assert (
        case_progress(deprived, {Dimension.INCOME: "helped"}, has_interventions=False)
        == "in_progress"
    )
    both = {Dimension.INCOME: "helped", Dimension.LIVING: "self_resolved"}
    assert case_progress(deprived, both, has_interventions=False) == "helped"  # type: ignore[arg-type]
    alone = {Dimension.INCOME: "self_resolved", Dimension.LIVING: "self_resolved"}
    assert case_progress(deprived, alone, has_interventions=True) == "self_resolved"  # type: ignore[arg-type]
