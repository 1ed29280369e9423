"""Logbook progress by difference against a recount written from TPMAP-RULES.md section 4 and the
logbook's event contract: random event streams (each household's events in order, with
duplicates published again later, replays and household statuses in any order)."""

from __future__ import annotations

import random
from collections import Counter
from itertools import product
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.areas import parent_chain
from services.contracts.events import HouseholdStatus
from services.contracts.indicators import Dimension
from services.reporting.aggregates import area_aggregate, counters_of_aggregate
from services.reporting.cases import CaseFile, CaseLedger, CaseRow, case_key
from services.reporting.contributions import Contribution, Ledger, figures
from services.reporting.progress import CASE_COUNTS, Work, progress_figures
from tests.unit.reporting.casework import (
    START,
    VILLAGES,
    YEARS,
    Event,
    Item,
    casework,
    logbook_event,
    recount,
)

AREAS = sorted({code for village in VILLAGES for code in parent_chain(village)})


def apply_in_batches(items: list[Item], batch: int) -> Counter[tuple[int, str, str]]:
    """What the store does, with each batch's rows read back from their stored JSON."""
    statuses = Ledger()
    stored: dict[tuple[str, int], tuple[str, str | None, dict[str, int]]] = {}
    applied: set[str] = set()
    totals: Counter[tuple[int, str, str]] = Counter()
    for start in range(0, len(items), batch):
        rows = {
            key: CaseRow(CaseFile.model_validate_json(file), Contribution(village, counters))
            for key, (file, village, counters) in stored.items()
        }
        cases = CaseLedger(rows, applied)
        for item in items[start : start + batch]:
            if isinstance(item, HouseholdStatus):
                if statuses.apply(item):
                    cases.set_deprivation(
                        case_key(item.household_id, item.survey_year), item.deprivation
                    )
            else:
                cases.apply_event(*item)
        for key in cases.changed:
            row = cases.cases[key]
            stored[key] = (
                row.file.model_dump_json(),
                row.contribution.village_code,
                dict(row.contribution.counters),
            )
        applied.update(cases.new_event_ids)
        totals.update(cases.counters)
    return totals


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 7))
def test_progress_by_difference_equals_a_recount(rng: random.Random, batch: int) -> None:
    items = casework(rng)
    counters = apply_in_batches(items, batch)
    by_area = {}
    for year, area in product(YEARS, AREAS):
        here = {k: v for (y, a, k), v in counters.items() if (y, a) == (year, area) and v}
        live = progress_figures(here)
        assert live == recount(items, year, area), (year, area)
        assert figures(here).progress == live
        # The aggregates topic carries the same figures.
        assert (
            progress_figures(counters_of_aggregate(area_aggregate(year, area, here, START))) == live
        )
        by_area[(year, area)] = live
    for (year, parent), figures_here in by_area.items():
        children = [
            by_area[(year, a)]
            for a in AREAS
            if len(parent_chain(a)) >= 2 and parent_chain(a)[-2] == parent
        ]
        for name in (*CASE_COUNTS, "interventions", "interventions_done") if children else ():
            assert getattr(figures_here, name) == sum(getattr(c, name) for c in children)


def _opened(**kind: Any) -> Event:
    return logbook_event(
        1, 2561, 0, "49010101", {"kind": "case_opened", "reason": "target", **kind}
    )


def _resolved(tick: int, dimension: str, resolution: str) -> Event:
    kind = {"kind": "resolution_recorded", "dimension": dimension, "resolution": resolution}
    return logbook_event(1, 2561, tick, "49010101", kind)


def test_helped_needs_every_deprived_dimension_and_follows_the_household() -> None:
    ledger = CaseLedger()
    key = case_key("hh-1", 2561)
    ledger.set_deprivation(key, [Dimension.HEALTH, Dimension.INCOME])
    assert ledger.counters_of(2561, "TH") == {}  # no case yet
    for event in (
        _opened(),
        _resolved(1, "health", "helped"),
        _resolved(2, "income", "self_resolved"),
    ):
        assert ledger.apply_event(*event)
    assert progress_figures(ledger.counters_of(2561, "49")).helped == 1
    # A newer household status deprived in education too: no longer every dimension resolved.
    ledger.set_deprivation(key, [Dimension.HEALTH, Dimension.INCOME, Dimension.EDUCATION])
    at_village = progress_figures(ledger.counters_of(2561, "49010101"))
    assert (at_village.cases, at_village.helped, at_village.in_progress) == (1, 0, 1)


def test_a_duplicate_event_changes_nothing() -> None:
    ledger = CaseLedger()
    opened = _opened()
    visit = logbook_event(
        1,
        2561,
        1,
        "49010101",
        {"kind": "visit_recorded", "visit_id": "v1", "visited_on": "2019-01-02"},
    )
    assert ledger.apply_event(*opened)
    assert ledger.apply_event(*visit)
    before = dict(ledger.counters)
    assert not ledger.apply_event(*visit)
    assert not ledger.apply_event(*opened)
    assert dict(ledger.counters) == before
    figures_here = progress_figures(ledger.counters_of(2561, "TH"))
    assert (figures_here.cases, figures_here.visits, figures_here.not_started) == (1, 1, 1)


def test_an_updated_intervention_replaces_the_old_one() -> None:
    ledger = CaseLedger()
    ledger.apply_event(*_opened())
    for tick, status, amount in ((1, "planned", 1500.5), (2, "done", 1200.25)):
        kind = {
            "kind": "intervention_recorded",
            "intervention_id": "i1",
            "dimension": "income",
            "agency_code": "CDD",
            "amount_baht": amount,
            "status": status,
        }
        ledger.apply_event(*logbook_event(1, 2561, tick, "49010101", kind))
    work = progress_figures(ledger.counters_of(2561, "4901"))
    assert (work.interventions, work.interventions_done, work.budget_baht) == (1, 1, 1200.25)
    assert (
        work.by_dimension["income"]
        == work.by_agency["CDD"]
        == Work(interventions=1, interventions_done=1, budget_baht=1200.25)
    )
    assert work.by_dimension["health"] == Work()
