"""The targeting rules of TPMAP-RULES.md sections 1-3, as pure functions: no I/O, no state.

From a household's survey record to its indicator statuses and deprivation set; from a person's
household, welfare status and death to their class; from the members' classes to the household's
target, no-card, crisis and priority outcome. Plus the orders that make the matcher independent
of arrival order: which record of a household is the newest, which welfare record wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.contracts.events import AgeBand, PersonClass, WelfareStatus
from services.contracts.indicators import (
    DIMENSIONS,
    Dimension,
    IndicatorResult,
    IndicatorSet,
    indicator_set_for,
)
from services.contracts.records import BE_OFFSET, BmnHousehold

ELDERLY_AGE = 60
# A crisis household (platform rule): target, and |S| >= 3, or income in S plus another
# dimension and a member who is 60+, disabled or bedridden.
CRISIS_MIN_DIMENSIONS = 3
# Priority packs (crisis, |S|, vulnerable members) into one integer, larger first.
_PRIORITY_CRISIS = 10_000
_PRIORITY_DIMENSION = 1_000
_PRIORITY_MAX_VULNERABLE = 999


@dataclass(frozen=True, slots=True)
class HouseholdAssessment:
    """A household's indicator statuses (section 2) and what follows from them."""

    statuses: tuple[IndicatorResult, ...]  # indicator n at index n - 1
    deprivation: frozenset[Dimension]

    @property
    def failed(self) -> list[int]:
        return [n for n, status in enumerate(self.statuses, 1) if status == "fail"]

    @property
    def applicable(self) -> list[int]:
        return [n for n, status in enumerate(self.statuses, 1) if status != "na"]

    @property
    def mpi_poor(self) -> bool:
        return bool(self.deprivation)


def _indicator_set(survey_year: int) -> IndicatorSet:
    indicator_set = indicator_set_for(survey_year)
    if indicator_set is None:
        msg = f"survey year {survey_year} is not supported"
        raise ValueError(msg)
    return indicator_set


def assess_household(record: BmnHousehold) -> HouseholdAssessment:
    """Indicator statuses: a household-unit indicator takes the household's value (indicator 22
    follows the income figure when there is one); a person-unit indicator fails if any member
    fails it, passes if some member passes and none fails, and is na otherwise. The household is
    deprived in a dimension when it fails any indicator of that dimension."""
    indicator_set = _indicator_set(record.survey_year)
    statuses: list[IndicatorResult] = []
    for indicator in indicator_set.indicators:
        key = str(indicator.number)
        if indicator.unit == "household":
            status = record.indicators.get(key, "na")
            if indicator.number == 22 and record.income_per_capita_baht is not None:
                status = record.income_indicator_result(indicator_set)
        else:
            results = {m.indicators.get(key, "na") for m in record.members}
            status = "fail" if "fail" in results else "pass" if "pass" in results else "na"
        statuses.append(status)
    deprivation = frozenset(
        i.dimension
        for i in indicator_set.indicators
        if i.dimension is not None and statuses[i.number - 1] == "fail"
    )
    return HouseholdAssessment(tuple(statuses), deprivation)


def sorted_dimensions(dimensions: frozenset[Dimension]) -> list[Dimension]:
    """In mask order: health, living, education, income, access."""
    return [d for d in DIMENSIONS if d in dimensions]


def is_deceased(death: date | None, survey_year: int) -> bool:
    """Dead for every survey year whose BE year is at least the death's BE year (platform rule)."""
    return death is not None and survey_year >= death.year + BE_OFFSET


def person_class(
    deprivation: frozenset[Dimension], welfare: WelfareStatus | None, deceased: bool
) -> PersonClass:
    if deceased:
        return "deceased"
    if not deprivation:
        return "not_poor"
    if welfare == "verified":
        return "target"
    if welfare == "registered":
        return "registered_poor"
    return "unregistered_poor"


def age_band(age: int) -> AgeBand:
    if age < 6:
        return "0-5"
    if age < 15:
        return "6-14"
    if age < ELDERLY_AGE:
        return "15-59"
    return "60+"


def is_vulnerable(age: int, *, disabled: bool, bedridden: bool) -> bool:
    """60+, disabled or bedridden: what the crisis rule and the priority count."""
    return age >= ELDERLY_AGE or disabled or bedridden


@dataclass(frozen=True, slots=True)
class MemberOutcome:
    """What the household outcome needs of one member."""

    person_class: PersonClass
    welfare: WelfareStatus | None
    vulnerable: bool


@dataclass(frozen=True, slots=True)
class HouseholdOutcome:
    member_count: int
    target_members: int
    registered_members: int
    unregistered_members: int
    vulnerable_members: int
    target: bool
    nocard: bool
    crisis: bool
    priority: int


def household_outcome(
    deprivation: frozenset[Dimension], members: list[MemberOutcome]
) -> HouseholdOutcome:
    """Section 3's household outcomes over the living members: a target household has a target
    member; a no-card household is MPI-poor with no member registered or verified; a crisis
    household is a target household with |S| >= 3, or with income in S plus another dimension and
    a member 60+, disabled or bedridden. Priority orders field work: crisis, |S|, vulnerable."""
    living = [m for m in members if m.person_class != "deceased"]
    target_members = sum(m.person_class == "target" for m in living)
    registered = sum(m.welfare in ("registered", "verified") for m in living)
    vulnerable = sum(m.vulnerable for m in living)
    target = target_members > 0
    crisis = target and (
        len(deprivation) >= CRISIS_MIN_DIMENSIONS
        or (Dimension.INCOME in deprivation and len(deprivation) >= 2 and vulnerable > 0)
    )
    priority = (
        crisis * _PRIORITY_CRISIS
        + len(deprivation) * _PRIORITY_DIMENSION
        + min(vulnerable, _PRIORITY_MAX_VULNERABLE)
    )
    return HouseholdOutcome(
        member_count=len(living),
        target_members=target_members,
        registered_members=registered,
        unregistered_members=len(living) - registered,
        vulnerable_members=vulnerable,
        target=target,
        nocard=bool(deprivation) and registered == 0,
        crisis=crisis,
        priority=priority,
    )


# --- order independence ------------------------------------------------------------------------

RecordOrder = tuple[str, str]


def record_order(record: BmnHousehold, event_id: str) -> RecordOrder:
    """Which of two records of one household and year is newer (platform rule): the later
    `surveyed_on` (a record without one is older than any with one), then the event ID. The ID
    is derived from content, so every worker, replay and arrival order agrees."""
    return (record.surveyed_on.isoformat() if record.surveyed_on else "", event_id)


WelfareOrder = tuple[float, int]


def welfare_order(updated_at: datetime, round_: int) -> WelfareOrder:
    """The latest welfare record per person wins: by `updated_at`, then `round`."""
    return (updated_at.timestamp(), round_)


def earliest_death(current: date | None, reported: date) -> date:
    """Several death records for one person: the earliest date holds (platform rule)."""
    return reported if current is None or reported < current else current


# A registration of round R serves survey year R + 1 (platform rule): TPMAP's data year 2561
# joined the 2560 registration round with the survey.
WELFARE_ROUND_TO_SURVEY_YEAR = 1


def welfare_only_year(welfare: WelfareStatus | None, round_: int | None) -> int | None:
    """The survey year in which a registrant counts as `welfare_only` when no household of that
    year lists them: verified registrants only, by their latest registration's round."""
    if welfare != "verified" or round_ is None:
        return None
    return round_ + WELFARE_ROUND_TO_SURVEY_YEAR
