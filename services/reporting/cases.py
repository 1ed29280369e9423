"""Cases as reporting counts them: the logbook's events of each case folded into a *case file*,
and the file's contribution to the progress counters of `progress.py`. Pure: no I/O.

`logbook.events.v1` comes from the logbook's outbox relay: key `household_id`, one case per
household and survey year, each household's events in the order the logbook committed them.
Delivery is at least once: an event whose acknowledgement was lost is published again, later,
with the same envelope `id` (derived from the event's content, which includes its time). The
events carry no version, so reporting applies **each event id once**, in partition order; a
duplicate or a replay changes nothing. What an event does to its case file:

- `case_opened`: the reason, status `open` (an outreach case that became target is announced
  again with reason `target`);
- `case_status_changed`: the status;
- `visit_recorded`: one visit more;
- `intervention_recorded` (sent when an intervention is recorded and on every update): the
  intervention as it is now, replacing what its ID had;
- `resolution_recorded`: the resolution of a dimension (the newest counts);
- every event: the case's village (a case counts at the village of its newest event).

Where a case stands needs its household's deprivation set, which only the matcher's household
statuses carry: the newest household status applied sets it in the file (a file is made for a
household with a non-empty set even before its case is opened; no file means an empty set). The
rule is the logbook's: `helped` once every deprived dimension is resolved (`helped` or
`self_resolved`, at least one `helped`), `self_resolved` when all resolved themselves,
`in_progress` once an intervention or a resolution is recorded, else `not_started`. A file
counts nothing until its case is opened.

As with statuses, a file's contribution is kept with it and a change is applied as the
difference between the old and the new contribution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.contracts.events import (
    CaseOpened,
    CaseStatusChanged,
    InterventionRecorded,
    LogbookEvent,
    VisitRecorded,
)
from services.contracts.indicators import DIMENSIONS, Dimension
from services.reporting.contributions import (
    NOTHING,
    Cell,
    Contribution,
    counters_at,
    deprivation_set,
    difference,
    placed_village,
)
from services.reporting.progress import PREFIX, work_key

Resolution = Literal["helped", "self_resolved", "in_progress"]
Progress = Literal["helped", "self_resolved", "in_progress", "not_started"]
CaseKey = tuple[str, int]
"""(household_id, survey_year): one case per household and year."""

NOT_DEPRIVED = "00000"
_RESOLVED = frozenset({"helped", "self_resolved"})


class InterventionState(BaseModel):
    model_config = ConfigDict(frozen=True)

    dimension: Dimension
    agency_code: str
    budget_satang: int
    done: bool


class CaseFile(BaseModel):
    """One case as its events left it, and its household's deprivation set."""

    model_config = ConfigDict(frozen=True)

    deprivation: str = Field(default=NOT_DEPRIVED, description="Mask order, from the status")
    village_code: str | None = None
    reason: Literal["target", "outreach"] | None = Field(
        default=None, description="None until the case is opened"
    )
    status: Literal["open", "no_longer_target", "closed"] | None = None
    visits: int = 0
    interventions: dict[str, InterventionState] = Field(default_factory=dict)
    resolutions: dict[Dimension, Resolution] = Field(default_factory=dict)


def case_key(household_id: str, survey_year: int) -> CaseKey:
    return (household_id, survey_year)


def with_event(case: CaseFile, event: LogbookEvent) -> CaseFile:
    """The case file after one more of its events."""
    change: dict[str, Any] = {"village_code": event.village_code}
    if isinstance(event, CaseOpened):
        change |= {"reason": event.reason, "status": "open"}
    elif isinstance(event, CaseStatusChanged):
        change["status"] = event.status
    elif isinstance(event, VisitRecorded):
        change["visits"] = case.visits + 1
    elif isinstance(event, InterventionRecorded):
        intervention = InterventionState(
            dimension=event.dimension,
            agency_code=event.agency_code,
            budget_satang=round(event.amount_baht * 100),
            done=event.status == "done",
        )
        change["interventions"] = {**case.interventions, event.intervention_id: intervention}
    else:
        change["resolutions"] = {**case.resolutions, event.dimension: event.resolution}
    return case.model_copy(update=change)


def case_progress(case: CaseFile) -> Progress:
    """Where a case stands (the module's rule)."""
    deprived = [d for d, flag in zip(DIMENSIONS, case.deprivation, strict=True) if flag == "1"]
    resolved = [case.resolutions.get(d) for d in deprived]
    if deprived and all(r in _RESOLVED for r in resolved):
        return "self_resolved" if all(r == "self_resolved" for r in resolved) else "helped"
    return "in_progress" if case.interventions or case.resolutions else "not_started"


def case_contribution(case: CaseFile) -> Contribution:
    """The progress counters of one case, at its village (nothing before it is opened)."""
    if case.reason is None or case.status is None:
        return NOTHING
    flags = {
        "cases": True,
        f"{case.reason}_cases": True,
        case.status: True,
        "visited": case.visits > 0,
        "with_intervention": bool(case.interventions),
        case_progress(case): True,
    }
    counters: Counter[str] = Counter({f"{PREFIX}{name}": 1 for name, flag in flags.items() if flag})
    counters[f"{PREFIX}visits"] = case.visits
    for item in case.interventions.values():
        counters[work_key("interventions", item.dimension.value, item.agency_code)] += 1
        counters[work_key("interventions_done", item.dimension.value, item.agency_code)] += (
            item.done
        )
        counters[work_key("budget_satang", item.dimension.value, item.agency_code)] += (
            item.budget_satang
        )
    return Contribution(
        placed_village(case.village_code), {key: n for key, n in counters.items() if n}
    )


@dataclass(frozen=True, slots=True)
class CaseRow:
    """A case file as stored, with the contribution applied for it."""

    file: CaseFile
    contribution: Contribution


EMPTY_ROW = CaseRow(CaseFile(), NOTHING)


class CaseLedger:
    """Applies logbook events and household deprivation sets to case files by difference.
    `cases` holds the rows it was given and those it changed, `seen` the event IDs applied
    (those given and `new_event_ids`), `counters` the changes, `changed` the rows to write."""

    def __init__(
        self, cases: Mapping[CaseKey, CaseRow] | None = None, seen: Iterable[str] = ()
    ) -> None:
        self.cases: dict[CaseKey, CaseRow] = dict(cases or {})
        self.seen: set[str] = set(seen)
        self.new_event_ids: list[str] = []
        self.counters: Counter[Cell] = Counter()
        self.changed: set[CaseKey] = set()

    def apply_event(self, event_id: str, event: LogbookEvent) -> bool:
        """Applies an event unless its ID was applied before; True if it was applied."""
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        self.new_event_ids.append(event_id)
        key = case_key(event.household_id, event.survey_year)
        self._replace(key, with_event(self.cases.get(key, EMPTY_ROW).file, event))
        return True

    def set_deprivation(self, key: CaseKey, dimensions: Iterable[Dimension]) -> None:
        """The deprivation set of the newest household status applied for `key`."""
        s = deprivation_set(dimensions)
        row = self.cases.get(key)
        if row is None and s == NOT_DEPRIVED:
            return  # no file stands for an empty set already
        current = (row or EMPTY_ROW).file
        if current.deprivation != s:
            self._replace(key, current.model_copy(update={"deprivation": s}))

    def _replace(self, key: CaseKey, file: CaseFile) -> None:
        old = self.cases.get(key)
        new = case_contribution(file)
        for (area, counter), value in difference(
            None if old is None else old.contribution, new
        ).items():
            self.counters[(key[1], area, counter)] += value
        self.cases[key] = CaseRow(file, new)
        self.changed.add(key)

    def counters_of(self, survey_year: int, area_code: str) -> dict[str, int]:
        return counters_at(self.counters, survey_year, area_code)
