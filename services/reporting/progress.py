"""Logbook progress (TPMAP-RULES.md section 4, "Logbook progress"): its counter keys and the
figures answered from them. Pure: no I/O.

`cases.py` turns every case into a contribution to these counters, stored per survey year and
area next to the status counters under the prefix `lb:`:

| key | counts |
|---|---|
| `lb:cases`, `lb:target_cases`, `lb:outreach_cases` | cases (one per household and year), by reason |
| `lb:open`, `lb:no_longer_target`, `lb:closed` | cases by status |
| `lb:visited`, `lb:visits` | cases with at least one visit; visits |
| `lb:with_intervention` | cases with at least one intervention |
| `lb:helped`, `lb:self_resolved`, `lb:in_progress`, `lb:not_started` | cases by progress (not started: pending) |
| `lb:interventions:D:A`, `lb:interventions_done:D:A` | interventions, and those done, in dimension `D` by agency `A` |
| `lb:budget_satang:D:A` | their amounts, in satang (integers add exactly; 100 satang = 1 baht) |

The dimension mask and the card filter do not apply to progress: a case is a household's, and
its work is split by dimension instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.contracts.indicators import DIMENSIONS

PREFIX = "lb:"
CASE_COUNTS: tuple[str, ...] = (
    "cases",
    "target_cases",
    "outreach_cases",
    "open",
    "no_longer_target",
    "closed",
    "visited",
    "visits",
    "with_intervention",
    "helped",
    "self_resolved",
    "in_progress",
    "not_started",
)
WorkMeasure = Literal["interventions", "interventions_done", "budget_satang"]


def work_key(measure: WorkMeasure, dimension: str, agency_code: str) -> str:
    return f"{PREFIX}{measure}:{dimension}:{agency_code}"


class Work(BaseModel):
    """Interventions recorded (any status), those done, and their budget."""

    model_config = ConfigDict(frozen=True)

    interventions: int = 0
    interventions_done: int = 0
    budget_baht: float = 0.0


def _no_work_by_dimension() -> dict[str, Work]:
    return {d.value: Work() for d in DIMENSIONS}


class ProgressFigures(BaseModel):
    """Field work in an area and survey year: cases and where they stand, visits,
    interventions and budget by dimension and agency."""

    model_config = ConfigDict(frozen=True)

    cases: int = 0
    target_cases: int = 0
    outreach_cases: int = 0
    open: int = 0
    no_longer_target: int = 0
    closed: int = 0
    visited: int = 0
    visits: int = 0
    with_intervention: int = 0
    helped: int = Field(default=0, description="Every deprived dimension resolved, one helped")
    self_resolved: int = Field(default=0, description="Every deprived dimension resolved itself")
    in_progress: int = Field(default=0, description="An intervention or a resolution, not all")
    not_started: int = Field(default=0, description="Pending: nothing recorded yet")
    interventions: int = 0
    interventions_done: int = 0
    budget_baht: float = 0.0
    by_dimension: dict[str, Work] = Field(default_factory=_no_work_by_dimension)
    by_agency: dict[str, Work] = Field(default_factory=dict)
    by_dimension_and_agency: dict[str, dict[str, Work]] = Field(default_factory=dict)


def _work(measures: Iterable[Counter[str]]) -> Work:
    total: Counter[str] = Counter()
    for counted in measures:
        total.update(counted)
    return Work(
        interventions=total["interventions"],
        interventions_done=total["interventions_done"],
        budget_baht=total["budget_satang"] / 100,
    )


def progress_figures(counters: Mapping[str, int]) -> ProgressFigures:
    """The progress figures of one area and year from its counters (other keys are ignored)."""
    counts = dict.fromkeys(CASE_COUNTS, 0)
    work: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for key, value in counters.items():
        if not value or not key.startswith(PREFIX):
            continue
        name = key.removeprefix(PREFIX)
        if name in counts:
            counts[name] += value
            continue
        measure, dimension, agency = name.split(":", 2)
        work[(dimension, agency)][measure] += value
    agencies = sorted({agency for _, agency in work})
    pairs = {
        d.value: {a: _work([m]) for (dim, a), m in sorted(work.items()) if dim == d.value}
        for d in DIMENSIONS
    }
    overall = _work(work.values())
    return ProgressFigures(
        **counts,
        interventions=overall.interventions,
        interventions_done=overall.interventions_done,
        budget_baht=overall.budget_baht,
        by_dimension={
            d.value: _work(m for (dim, _), m in work.items() if dim == d.value) for d in DIMENSIONS
        },
        by_agency={a: _work(m for (_, ag), m in work.items() if ag == a) for a in agencies},
        by_dimension_and_agency={d: by_agency for d, by_agency in pairs.items() if by_agency},
    )
