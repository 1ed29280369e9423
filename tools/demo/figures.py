"""TPMAP-RULES section 4's figures of a population of records, computed with the matcher's own
rules (`services/matcher/rules.py`), and their comparison with TPMAP's published figures.
Pure: no I/O.

Counts are kept per area and exact deprivation set, so one tally answers every mask: under mask
M the poor are those whose set meets M, and a target person counts in dimension d when d is in
both (TPMAP-RULES section 4).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.contracts.events import WelfareStatus
from services.contracts.indicators import DIMENSIONS
from services.contracts.records import BmnHousehold
from services.matcher.rules import ELDERLY_AGE, assess_household, is_deceased, person_class
from tools.demo.calibration import MASKS, POOR_SETS, mask_bits

# Keys: a figure name, or (name, deprivation set) or (name, indicator[, set]).
Tally = Counter[str | tuple[Any, ...]]
INDICATOR_NUMBERS = range(1, 32)
_CARD = frozenset({"registered", "verified"})

# What the calibration makes exact, and what only close (TPMAP-RULES section 4's names, as
# `services.reporting.tpmap_published` reads TPMAP's files).
EXACT_COMMON = ("households_surveyed", "persons_surveyed", "welfare_registered", "welfare_verified")
EXACT_UNDER_MASK = ("poor_households", "poor_persons", "poor_registered", "target_persons")
PER_INDICATOR_COMMON = ("indicator_applicable", "indicator_failed")
PER_INDICATOR_UNDER_MASK = ("target_by_indicator",)
PER_INDICATOR_TOLERANCE = 0.01


def area_codes(village_code: str) -> tuple[str, str]:
    """The province and district a village counts in."""
    return village_code[:2], village_code[:4]


def tally(
    households: Iterable[BmnHousehold],
    welfare: Mapping[str, WelfareStatus],
    deaths: Mapping[str, date] | None = None,
) -> dict[str, Tally]:
    """Counts per province and district code: surveyed population and per exact deprivation
    set the poor and target figures, as the matcher's rules classify every person."""
    deaths = deaths or {}
    tallies: dict[str, Tally] = {}
    for record in households:
        assessment = assess_household(record)
        deprivation = sum(d.bit for d in assessment.deprivation)
        failed, applicable = assessment.failed, assessment.applicable
        counts: Tally = Counter()
        living = 0
        for member in record.members:
            status = welfare.get(member.citizen_id)
            kind = person_class(
                assessment.deprivation,
                status,
                is_deceased(deaths.get(member.citizen_id), record.survey_year),
            )
            if kind == "deceased":
                continue
            living += 1
            counts["welfare_registered"] += status in _CARD
            counts["welfare_verified"] += status == "verified"
            counts["elderly"] += member.age >= ELDERLY_AGE
            counts["disabled"] += member.disabled
            counts["chronic_patients"] += member.chronic_patient
            if deprivation:
                counts["poor_persons", deprivation] += 1
                counts["poor_registered", deprivation] += status in _CARD
                if kind == "target":
                    counts["target_persons", deprivation] += 1
                    for n in failed:
                        counts["target_failing", n, deprivation] += 1
        if not living:
            continue
        counts["households_surveyed"] += 1
        counts["persons_surveyed"] += living
        if deprivation:
            counts["poor_households", deprivation] += 1
        for n in applicable:
            counts["applicable", n] += living
        for n in failed:
            counts["failed", n] += living
        for code in area_codes(record.village_code):
            tallies.setdefault(code, Counter()).update(counts)
    return tallies


def figures(counts: Tally, mask: str) -> dict[str, Any]:
    """An area's figures under a mask, by the names `read_published` gives TPMAP's."""
    chosen = mask_bits(mask)
    meeting = [s for s in POOR_SETS if s & chosen]
    result: dict[str, Any] = {
        name: counts[name] for name in (*EXACT_COMMON, "elderly", "disabled", "chronic_patients")
    }
    for name in EXACT_UNDER_MASK:
        result[name] = sum(counts[name, s] for s in meeting)
    result["target_by_dimension"] = {
        d.value: sum(counts["target_persons", s] for s in meeting if s & d.bit & chosen)
        for d in DIMENSIONS
    }
    result["indicator_applicable"] = {str(n): counts["applicable", n] for n in INDICATOR_NUMBERS}
    result["indicator_failed"] = {str(n): counts["failed", n] for n in INDICATOR_NUMBERS}
    result["target_by_indicator"] = {
        str(n): sum(counts["target_failing", n, s] for s in meeting) for n in INDICATOR_NUMBERS
    }
    return result


@dataclass(frozen=True, slots=True)
class Difference:
    area: str
    mask: str
    figure: str  # e.g. "poor_persons", "target_by_indicator.22"
    ours: int
    published: int
    exact: bool  # must be equal (else within PER_INDICATOR_TOLERANCE)

    @property
    def relative(self) -> float:
        return abs(self.ours - self.published) / max(self.published, 1)

    @property
    def acceptable(self) -> bool:
        return self.ours == self.published or (
            not self.exact and self.relative <= PER_INDICATOR_TOLERANCE
        )


def differences(
    area: str, mask: str, ours: Mapping[str, Any], published: Mapping[str, Any]
) -> list[Difference]:
    """Every figure of the calibration's that differs between ours and TPMAP's (under one
    mask; the common figures are compared with mask 11111 only)."""
    found: list[Difference] = []

    def compare(figure: str, mine: int, theirs: int, exact: bool) -> None:
        if mine != theirs:
            found.append(Difference(area, mask, figure, mine, int(theirs), exact))

    common = mask == "11111"
    for name in (*(EXACT_COMMON if common else ()), *EXACT_UNDER_MASK):
        compare(name, ours[name], published[name], exact=True)
    for d in DIMENSIONS:
        compare(
            f"target_by_dimension.{d.value}",
            ours["target_by_dimension"][d.value],
            published["target_by_dimension"][d.value],
            exact=True,
        )
    for group in (*(PER_INDICATOR_COMMON if common else ()), *PER_INDICATOR_UNDER_MASK):
        for key, theirs in published[group].items():
            compare(f"{group}.{key}", ours[group][key], theirs, exact=False)
    return found


def all_differences(
    tallies: Mapping[str, Tally],
    areas: Iterable[str],
    published: Callable[[str, str], Mapping[str, Any] | None],
) -> list[Difference]:
    """Differences with TPMAP's figures (`published(area, mask)`) for every area and mask."""
    found: list[Difference] = []
    for code in areas:
        counts = tallies.get(code, Counter())
        for mask in MASKS:
            theirs = published(code, mask)
            if theirs is None:
                msg = f"TPMAP published no figures for area {code} under mask {mask}"
                raise ValueError(msg)
            found.extend(differences(code, mask, figures(counts, mask), theirs))
    return found
