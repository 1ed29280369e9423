"""Synthetic field work for the progress tests: logbook events of a few cases with household
statuses, as streams with the delivery faults of logbook.events.v1, and a recount of the
progress figures written from TPMAP-RULES.md section 4 and the event contract (not from
reporting's case files). Used by the unit and the service tests."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product
from typing import Any

from pydantic import TypeAdapter

from services.contracts.areas import parent_chain
from services.contracts.events import (
    HouseholdStatus,
    InterventionRecorded,
    LogbookEvent,
    LogbookEventData,
    content_id,
)
from services.contracts.indicators import DIMENSIONS, Dimension
from services.contracts.topics import LOGBOOK_EVENTS
from services.reporting.progress import CASE_COUNTS, ProgressFigures, Work

VILLAGES = ("49010101", "49010102", "49020301", "30010101")
YEARS = (2561, 2562)
AGENCIES = ("CDD", "DSDW", "MOPH")
START = datetime(2019, 1, 1, tzinfo=UTC)

Event = tuple[str, LogbookEvent]
"""(envelope id, event): the id is the one the logbook's outbox gives the event."""
Item = Event | HouseholdStatus
# Deprivation and resolutions drawn from three dimensions: cases get resolved often enough.
_OFTEN_DEPRIVED = DIMENSIONS[:3]
_EVENT = TypeAdapter[LogbookEvent](LogbookEvent)


def logbook_event(
    household: int, year: int, tick: int, village: str, kind: dict[str, Any]
) -> Event:
    event = _EVENT.validate_python(
        {
            "household_id": f"hh-{household}",
            "survey_year": year,
            "village_code": village,
            "case_id": f"c-{household}-{year}",
            "actor": "team-1",
            "occurred_at": START + timedelta(seconds=tick),
            **kind,
        }
    )
    return content_id(LOGBOOK_EVENTS.require_event_type(), LogbookEventData(event=event)), event


def event_kind(rng: random.Random) -> dict[str, Any]:
    """Any event after a case's first: re-announced as target, a status, a visit, an
    intervention recorded or updated, a resolution."""
    kind = rng.choice(["case_opened", "case_status_changed", "visit", "intervention", "resolution"])
    if kind == "case_opened":
        return {"kind": kind, "reason": "target"}
    if kind == "case_status_changed":
        return {"kind": kind, "status": rng.choice(["open", "no_longer_target", "closed"])}
    if kind == "visit":
        return {"kind": "visit_recorded", "visit_id": "v", "visited_on": "2019-01-02"}
    if kind == "intervention":
        return {
            "kind": "intervention_recorded",
            "intervention_id": rng.choice(["i1", "i2", "i3"]),
            "dimension": rng.choice(DIMENSIONS),
            "agency_code": rng.choice(AGENCIES),
            "amount_baht": rng.randint(0, 5_000_000) / 100,
            "status": rng.choice(["planned", "in_progress", "done"]),
        }
    return {
        "kind": "resolution_recorded",
        "dimension": rng.choice(_OFTEN_DEPRIVED),
        "resolution": rng.choice(["helped", "self_resolved", "in_progress"]),
    }


def household_status(
    n: int, year: int, version: int, deprivation: list[Dimension]
) -> HouseholdStatus:
    return HouseholdStatus(
        household_id=f"hh-{n}",
        survey_year=year,
        village_code=VILLAGES[0],
        source="bmn",
        deprivation=[d for d in DIMENSIONS if d in deprivation],
        failed_indicators=[],
        member_count=3,
        target_members=1,
        registered_members=1,
        unregistered_members=2,
        vulnerable_members=0,
        mpi_poor=bool(deprivation),
        target=bool(deprivation),
        nocard=False,
        crisis=False,
        priority=0,
        version=version,
    )


def casework(rng: random.Random, households: int = 3, events: int = 8) -> list[Item]:
    """Cases of `households` households in two years: each case's events in order (opened
    first, or never opened), interleaved with the other cases' and with household statuses in
    any order (stale versions after newer ones too); copies of some events published again
    after their first copy; then a replay of a prefix."""
    per_case: dict[tuple[int, int], list[Event]] = {}
    tick = 0
    for n, year in product(range(households), YEARS):
        village = rng.choice(VILLAGES)
        opened = rng.random() < 0.7
        per_case[(n, year)] = []
        for index in range(rng.randint(0, events)):
            tick += 1
            if rng.random() < 0.15:
                village = rng.choice(VILLAGES)  # the household moved
            kind = (
                {"kind": "case_opened", "reason": rng.choice(["target", "outreach"])}
                if index == 0 and opened
                else event_kind(rng)
            )
            per_case[(n, year)].append(logbook_event(n, year, tick, village, kind))
    turns = [key for key, case_events in per_case.items() for _ in case_events]
    rng.shuffle(turns)
    cursors = dict.fromkeys(per_case, 0)
    topic: list[Item] = []
    for key in turns:
        topic.append(per_case[key][cursors[key]])
        cursors[key] += 1
    statuses: list[Item] = [
        household_status(n, year, version, rng.sample(_OFTEN_DEPRIVED, rng.randint(0, 2)))
        for n, year in product(range(households), YEARS)
        for version in range(1, rng.randint(0, 3) + 1)
    ]
    rng.shuffle(statuses)
    # The events in the topic's order, the statuses anywhere between them.
    queues = {True: iter(topic), False: iter(statuses)}
    sides = [True] * len(topic) + [False] * len(statuses)
    rng.shuffle(sides)
    items = [next(queues[side]) for side in sides]
    for _ in range(rng.randint(0, len(topic))):
        first = rng.randrange(len(items))
        if isinstance(items[first], tuple):
            items.insert(rng.randint(first + 1, len(items)), items[first])
    return items + items[: rng.randint(0, len(items))]


# --- the recount ---------------------------------------------------------------------------------


def stands(deprived: list[Dimension], resolutions: dict[Dimension, str], worked: bool) -> str:
    """Where a case stands, from the rule (TPMAP-RULES.md section 4 and the logbook's report)."""
    outcome = [resolutions.get(d) for d in deprived]
    if deprived and all(r == "self_resolved" for r in outcome):
        return "self_resolved"
    if deprived and all(r in ("helped", "self_resolved") for r in outcome):
        return "helped"
    return "in_progress" if worked or resolutions else "not_started"


def newest_deprivation(items: list[Item], year: int) -> dict[str, list[Dimension]]:
    newest: dict[str, HouseholdStatus] = {}
    for item in items:
        if not isinstance(item, HouseholdStatus) or item.survey_year != year:
            continue
        if item.household_id not in newest or item.version > newest[item.household_id].version:
            newest[item.household_id] = item
    return {household: status.deprivation for household, status in newest.items()}


def _total(cells: list[list[Any]]) -> Work:
    return Work(
        interventions=sum(c[0] for c in cells),
        interventions_done=sum(c[1] for c in cells),
        budget_baht=float(sum((c[2] for c in cells), Decimal(0))),
    )


def recount(items: list[Item], year: int, area: str) -> ProgressFigures:
    """The progress figures of one year and area over the distinct events in topic order."""
    events: dict[str, LogbookEvent] = {}
    for item in items:
        if isinstance(item, tuple):
            events.setdefault(item[0], item[1])
    deprivation = newest_deprivation(items, year)
    by_case: dict[str, list[LogbookEvent]] = {}
    for event in events.values():
        if event.survey_year == year:
            by_case.setdefault(event.household_id, []).append(event)
    counts: Counter[str] = Counter()
    work: dict[tuple[str, str], list[Any]] = {}
    for household_id, history in by_case.items():
        opened = [e for e in history if e.kind == "case_opened"]
        if not opened or area not in parent_chain(history[-1].village_code):
            continue
        status = [
            e.status if e.kind == "case_status_changed" else "open"
            for e in history
            if e.kind in ("case_opened", "case_status_changed")
        ][-1]
        interventions = {
            e.intervention_id: e for e in history if isinstance(e, InterventionRecorded)
        }
        resolutions = {
            e.dimension: e.resolution for e in history if e.kind == "resolution_recorded"
        }
        visits = sum(e.kind == "visit_recorded" for e in history)
        counts.update(
            {
                "cases": 1,
                f"{opened[-1].reason}_cases": 1,
                status: 1,
                "visited": visits > 0,
                "visits": visits,
                "with_intervention": bool(interventions),
                stands(deprivation.get(household_id, []), resolutions, bool(interventions)): 1,
            }
        )
        for item in interventions.values():
            cell = work.setdefault((item.dimension.value, item.agency_code), [0, 0, Decimal(0)])
            cell[0] += 1
            cell[1] += item.status == "done"
            cell[2] += Decimal(str(item.amount_baht))
    overall = _total(list(work.values()))
    return ProgressFigures(
        **{name: counts[name] for name in CASE_COUNTS},
        interventions=overall.interventions,
        interventions_done=overall.interventions_done,
        budget_baht=overall.budget_baht,
        by_dimension={
            d.value: _total([c for (dim, _), c in work.items() if dim == d.value])
            for d in DIMENSIONS
        },
        by_agency={
            a: _total([c for (_, ag), c in work.items() if ag == a])
            for a in sorted({a for _, a in work})
        },
        by_dimension_and_agency={
            d.value: {a: _total([c]) for (dim, a), c in sorted(work.items()) if dim == d.value}
            for d in DIMENSIONS
            if any(dim == d.value for dim, _ in work)
        },
    )
