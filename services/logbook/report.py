"""The quarterly progress report per area (TPMAP-RULES.md section 4, "Logbook progress"), as CSV
rows. Pure: the store hands in each case as it stood at the quarter's end.

Quarters are those of the Thai government's fiscal year (ปีงบประมาณ), which runs from 1 October to
30 September and is named by the Buddhist-Era year it ends in: fiscal 2562, quarter 1 is
October-December 2018 (CE).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.contracts.areas import COUNTRY_CODE, area, children, level_of
from services.contracts.indicators import DIMENSIONS, Dimension
from services.logbook.cases import Resolution, case_progress

BE_OFFSET = 543
# Quarter n of a fiscal year starts in this month, in the CE year (fiscal year CE - 1 for Q1).
_QUARTER_START_MONTH = {1: 10, 2: 1, 3: 4, 4: 7}
_CHILD_PREFIX = {"country": 2, "province": 4, "district": 6, "subdistrict": 8}


@dataclass(frozen=True, slots=True)
class Quarter:
    fiscal_year: int  # Buddhist Era
    number: int  # 1-4

    def __post_init__(self) -> None:
        if self.number not in _QUARTER_START_MONTH:
            msg = "quarter must be 1, 2, 3 or 4 (Q1 is October-December)"
            raise ValueError(msg)

    @property
    def start(self) -> date:
        ce = self.fiscal_year - BE_OFFSET - (1 if self.number == 1 else 0)
        return date(ce, _QUARTER_START_MONTH[self.number], 1)

    @property
    def end(self) -> date:
        """The first day after the quarter."""
        if self.number == 4:
            return Quarter(self.fiscal_year + 1, 1).start
        return Quarter(self.fiscal_year, self.number + 1).start

    @property
    def label(self) -> str:
        return f"{self.fiscal_year}-Q{self.number}"


def quarter_of(day: date) -> Quarter:
    """The fiscal quarter a (CE) date falls in."""
    fiscal_year = day.year + BE_OFFSET + (1 if day.month >= 10 else 0)
    number = {10: 1, 11: 1, 12: 1, 1: 2, 2: 2, 3: 2, 4: 3, 5: 3, 6: 3}.get(day.month, 4)
    return Quarter(fiscal_year, number)


@dataclass(frozen=True, slots=True)
class InterventionFacts:
    dimension: Dimension
    agency_code: str
    amount_baht: Decimal
    status: str
    in_quarter: bool  # recorded during the quarter


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """One case at the quarter's end: only what existed by then."""

    village_code: str
    reason: str
    status: str
    deprived: tuple[Dimension, ...]
    visits: int
    visits_in_quarter: int
    interventions: tuple[InterventionFacts, ...] = ()
    resolutions: dict[Dimension, Resolution] = field(default_factory=dict)


PROGRESS_COLUMNS: tuple[str, ...] = (
    "quarter",
    "area_code",
    "level",
    "name_th",
    "name_en",
    "cases",
    "target_cases",
    "outreach_cases",
    "open",
    "no_longer_target",
    "closed",
    "visited",
    "with_intervention",
    "helped",
    "self_resolved",
    "in_progress",
    "not_started",
    "visits_in_quarter",
    "interventions",
    "interventions_in_quarter",
    "interventions_done",
    "budget_baht",
    *(f"budget_{d.value}_baht" for d in DIMENSIONS),
)
INTERVENTION_COLUMNS: tuple[str, ...] = (
    "quarter",
    "area_code",
    "level",
    "name_th",
    "dimension",
    "agency_code",
    "interventions",
    "interventions_done",
    "budget_baht",
)


def _report_areas(roots: Iterable[str], found: Iterable[str]) -> list[str]:
    """Each root followed by its children (known ones and any a case lies in), in code order."""
    found = set(found)
    ordered: list[str] = []
    for root in roots:
        ordered.append(root)
        level = level_of(root)
        if level is None or level not in _CHILD_PREFIX:
            continue
        width = _CHILD_PREFIX[level]
        prefix = "" if root == COUNTRY_CODE else root
        kids = {a.code for a in children(root)}
        kids |= {code[:width] for code in found if code.startswith(prefix)}
        ordered.extend(sorted(kids))
    return ordered


def _by_prefix(cases: list[CaseFacts]) -> dict[str, list[CaseFacts]]:
    """Cases under every area prefix ('' for the country): one pass, not one per area."""
    grouped: dict[str, list[CaseFacts]] = {}
    for case in cases:
        for width in (0, 2, 4, 6, 8):
            grouped.setdefault(case.village_code[:width], []).append(case)
    return grouped


def _names(code: str) -> tuple[str, str, str]:
    known = area(code)
    if known is None:
        return str(level_of(code)), "", ""
    return known.level, known.name_th, known.name_en


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def progress_rows(quarter: Quarter, roots: list[str], cases: list[CaseFacts]) -> list[list[str]]:
    """One row per area: each root, then its children; cumulative to the quarter's end."""
    rows = []
    grouped = _by_prefix(cases)
    for code in _report_areas(roots, (c.village_code for c in cases)):
        inside = grouped.get("" if code == COUNTRY_CODE else code, [])
        counts = dict.fromkeys(
            ("helped", "self_resolved", "in_progress", "not_started", "visited", "with_i"), 0
        )
        budget = dict.fromkeys(DIMENSIONS, Decimal(0))
        interventions = in_quarter = done = visits_in_quarter = 0
        for case in inside:
            counts[
                case_progress(
                    list(case.deprived),
                    case.resolutions,
                    has_interventions=bool(case.interventions),
                )
            ] += 1
            counts["visited"] += case.visits > 0
            counts["with_i"] += bool(case.interventions)
            visits_in_quarter += case.visits_in_quarter
            for item in case.interventions:
                interventions += 1
                in_quarter += item.in_quarter
                done += item.status == "done"
                budget[item.dimension] += item.amount_baht
        level, name_th, name_en = _names(code)
        rows.append(
            [
                quarter.label,
                code,
                level,
                name_th,
                name_en,
                str(len(inside)),
                str(sum(c.reason == "target" for c in inside)),
                str(sum(c.reason == "outreach" for c in inside)),
                str(sum(c.status == "open" for c in inside)),
                str(sum(c.status == "no_longer_target" for c in inside)),
                str(sum(c.status == "closed" for c in inside)),
                str(counts["visited"]),
                str(counts["with_i"]),
                str(counts["helped"]),
                str(counts["self_resolved"]),
                str(counts["in_progress"]),
                str(counts["not_started"]),
                str(visits_in_quarter),
                str(interventions),
                str(in_quarter),
                str(done),
                _money(sum(budget.values(), Decimal(0))),
                *(_money(budget[d]) for d in DIMENSIONS),
            ]
        )
    return rows


def intervention_rows(
    quarter: Quarter, roots: list[str], cases: list[CaseFacts]
) -> list[list[str]]:
    """Interventions and budget by dimension and agency, per root area (cumulative)."""
    rows = []
    grouped = _by_prefix(cases)
    for root in roots:
        totals: dict[tuple[Dimension, str], list[Decimal]] = {}
        for case in grouped.get("" if root == COUNTRY_CODE else root, []):
            for item in case.interventions:
                entry = totals.setdefault((item.dimension, item.agency_code), [Decimal(0)] * 3)
                entry[0] += 1
                entry[1] += item.status == "done"
                entry[2] += item.amount_baht
        level, name_th, _ = _names(root)
        for (dimension, agency_code), (count, done, budget) in sorted(
            totals.items(), key=lambda kv: (DIMENSIONS.index(kv[0][0]), kv[0][1])
        ):
            rows.append(
                [
                    quarter.label,
                    root,
                    level,
                    name_th,
                    dimension.value,
                    agency_code,
                    str(int(count)),
                    str(int(done)),
                    _money(budget),
                ]
            )
    return rows


def render_csv(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()
