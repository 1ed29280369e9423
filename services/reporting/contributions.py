"""What one person or household status adds to the aggregates, and the figures of TPMAP-RULES.md
section 4 answered from the stored counters. Pure: no I/O.

Every status is turned into a *contribution*: its village (which gives its five areas) and a flat
mapping of counter keys to integers. Reporting stores, per person-year and household-year, the
contribution of the newest version it applied; a newer version changes the counters by the
difference (old contribution subtracted at the old village's areas, new one added at the new
village's). A replayed or stale version (not newer than the stored one) changes nothing.

Counter keys (per survey year and area):

| key | counts |
|---|---|
| `persons` | surveyed persons: living members of a surveyed household |
| `welfare_registered`, `welfare_verified` | surveyed persons with that card status |
| `elderly`, `disabled`, `chronic` | surveyed persons 60+, disabled, chronic patients |
| `ind_app:N`, `ind_fail:N` | surveyed persons whose household's indicator N is applicable / failed |
| `deceased` | persons of a surveyed household who are deceased that year (not surveyed, see below) |
| `welfare_only` | verified registrants with no survey record that year, at their registry address |
| `unplaced` | statuses without a usable village code: country level only |
| `pp:SSSSS:C` | poor persons (`S` not empty) in exact deprivation set `S`, card filter `C` |
| `pt:SSSSS:C` | target persons in set `S` and card filter `C` |
| `pti:SSSSS:C:N` | target persons in set `S`, filter `C`, whose household fails indicator N |
| `households` | surveyed households |
| `hp:SSSSS:C`, `ht:SSSSS:C`, `hc:SSSSS:C` | MPI-poor, target, crisis households in set `S`, filter `C` |

`SSSSS` is the deprivation set as a mask string (health, living, education, income, access);
`C` is `card` or `nocard`. The logbook's progress counters (`lb:...`, from cases rather than
statuses) are in `progress.py` and `cases.py`.

Platform rules (TPMAP-RULES.md is silent):

- **Deceased persons are not surveyed persons**: a person dead in a survey year counts in no
  figure of that year but `deceased` (the matcher's household counts are over living members
  too), so `persons_surveyed` is the MPI population and `target_rate`'s denominator.
- **`removed`** persons (no longer listed by any household that year) count nowhere.
- **Card filter**: a person is `card` when their own welfare status is `registered` or
  `verified`; a household is `card` when at least one living member is (so a poor `nocard`
  household is TPMAP's `stateWelfareCard=nocard` household). Under `card`, poor persons are the
  poor registered; under `nocard`, the unregistered poor (and no target person).
- **MPI under a mask**: a person is poor iff `S ∩ M` is not empty and their deprivation score
  is `|S ∩ M| / 5` (dimensions outside the mask count 0, as every figure under a mask does);
  with `11111` this is the Alkire-Foster MPI of section 4.
- A status without a usable 8-digit village code counts only as `unplaced`, at the country.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.contracts.areas import COUNTRY_CODE, level_of, parent_chain
from services.contracts.events import HouseholdStatus, PersonClass, PersonStatus
from services.contracts.indicators import DIMENSIONS, Dimension, mask_to_dimensions
from services.reporting.progress import PREFIX as PROGRESS_PREFIX
from services.reporting.progress import ProgressFigures, progress_figures

CardFilter = Literal["all", "card", "nocard"]
CARD_FILTERS: tuple[CardFilter, ...] = ("all", "card", "nocard")
ALL_DIMENSIONS_MASK = "11111"
INDICATOR_COUNT = 31

_SURVEYED: frozenset[PersonClass] = frozenset(
    {"not_poor", "target", "registered_poor", "unregistered_poor"}
)
_HAS_CARD = frozenset({"registered", "verified"})


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one status adds at each of its village's areas (only non-zero counters)."""

    village_code: str | None
    counters: Mapping[str, int] = field(default_factory=dict)

    def areas(self) -> tuple[str, ...]:
        """The areas it counts in: the five levels of its village, or the country alone when it
        has no usable village (it then holds only `unplaced`)."""
        if self.village_code is None:
            return (COUNTRY_CODE,)
        return parent_chain(self.village_code)


NOTHING = Contribution(None, {})

Delta = dict[tuple[str, str], int]
"""(area code, counter key) -> change."""


def person_key(status: PersonStatus) -> str:
    """The person-year a status replaces the previous status of (the topic's key)."""
    return f"{status.citizen_id}:{status.survey_year}"


def household_key(status: HouseholdStatus) -> str:
    return f"{status.household_id}:{status.survey_year}"


def deprivation_set(dimensions: Iterable[Dimension]) -> str:
    """The exact deprivation set as a mask string, e.g. [living, income] -> '01010'."""
    present = set(dimensions)
    return "".join("1" if d in present else "0" for d in DIMENSIONS)


def placed_village(code: str | None) -> str | None:
    """The code if it is a usable 8-digit village code, else None (counted at the country)."""
    return code if code is not None and level_of(code) == "village" else None


def person_contribution(status: PersonStatus) -> Contribution:
    """A person-year status's counters (see the module's table and platform rules)."""
    if status.person_class == "removed":
        return NOTHING
    village = placed_village(status.village_code)
    if village is None:
        return Contribution(None, {"unplaced": 1})
    if status.person_class == "deceased":
        return Contribution(village, {"deceased": 1})
    if status.person_class == "welfare_only":
        return Contribution(village, {"welfare_only": 1})
    if status.person_class not in _SURVEYED:
        return NOTHING
    card = status.welfare_status in _HAS_CARD
    flags = {
        "persons": True,
        "welfare_registered": card,
        "welfare_verified": status.welfare_status == "verified",
        "elderly": status.age_band == "60+",
        "disabled": status.disabled,
        "chronic": status.chronic_patient,
    }
    counters = {key: 1 for key, flag in flags.items() if flag}
    failed = sorted(set(status.failed_indicators))
    for number in sorted(set(status.applicable_indicators)):
        counters[f"ind_app:{number}"] = 1
    for number in failed:
        counters[f"ind_fail:{number}"] = 1
    s = deprivation_set(status.deprivation)
    if "1" in s:
        cell = f"{s}:{'card' if card else 'nocard'}"
        counters[f"pp:{cell}"] = 1
        if status.person_class == "target":
            counters[f"pt:{cell}"] = 1
            for number in failed:
                counters[f"pti:{cell}:{number}"] = 1
    return Contribution(village, counters)


def household_contribution(status: HouseholdStatus) -> Contribution:
    """A household-year status's counters: surveyed, and per exact set and card filter the
    MPI-poor, target and crisis households."""
    village = placed_village(status.village_code)
    if village is None:
        return Contribution(None, {"unplaced": 1})
    counters: dict[str, int] = {"households": 1}
    s = deprivation_set(status.deprivation)
    if "1" in s:
        cell = f"{s}:{'card' if status.registered_members > 0 else 'nocard'}"
        counters[f"hp:{cell}"] = 1
        if status.target:
            counters[f"ht:{cell}"] = 1
        if status.crisis:
            counters[f"hc:{cell}"] = 1
    return Contribution(village, counters)


def difference(old: Contribution | None, new: Contribution) -> Delta:
    """The counter changes that replace `old` (None: nothing applied yet) by `new`; zero changes
    are left out."""
    delta: Counter[tuple[str, str]] = Counter()
    if old is not None:
        for area in old.areas():
            for key, value in old.counters.items():
                delta[(area, key)] -= value
    for area in new.areas():
        for key, value in new.counters.items():
            delta[(area, key)] += value
    return {cell: value for cell, value in delta.items() if value != 0}


def is_newer(stored_version: int | None, incoming_version: int) -> bool:
    """Only a version above the applied one changes anything: duplicates, replays and stale
    versions are ignored."""
    return stored_version is None or incoming_version > stored_version


EntityKey = tuple[str, str]
"""('person', 'citizen_id:year') or ('household', 'household_id:year')."""
Cell = tuple[int, str, str]
"""(survey year, area code, counter key)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """The newest version of a person-year or household-year applied, and what it contributed."""

    version: int
    contribution: Contribution


def entity_key(status: PersonStatus | HouseholdStatus) -> EntityKey:
    if isinstance(status, PersonStatus):
        return ("person", person_key(status))
    return ("household", household_key(status))


def contribution_of(status: PersonStatus | HouseholdStatus) -> Contribution:
    if isinstance(status, PersonStatus):
        return person_contribution(status)
    return household_contribution(status)


class Ledger:
    """Applies statuses by difference: `applied` holds each key's newest applied version and
    contribution, `counters` the changes so far (the totals when it started empty), `changed`
    the keys whose applied row must be written back.

    Changes are summed per village as statuses come and spread to the village's five levels
    once, when `counters` is read: a batch's statuses share few villages, and spreading each
    status's twenty-odd counters to five areas was a third of reporting's time."""

    def __init__(self, applied: Mapping[EntityKey, Applied] | None = None) -> None:
        self.applied: dict[EntityKey, Applied] = dict(applied or {})
        self.changed: set[EntityKey] = set()
        # (survey year, village code or None for unplaced, counter) -> change
        self._at_villages: Counter[tuple[int, str | None, str]] = Counter()

    def apply(self, status: PersonStatus | HouseholdStatus) -> bool:
        """Applies `status` if it is newer than the applied version; True if it was."""
        key = entity_key(status)
        stored = self.applied.get(key)
        if not is_newer(None if stored is None else stored.version, status.version):
            return False
        new = contribution_of(status)
        year = status.survey_year
        if stored is not None:
            old = stored.contribution
            for counter, value in old.counters.items():
                self._at_villages[(year, old.village_code, counter)] -= value
        for counter, value in new.counters.items():
            self._at_villages[(year, new.village_code, counter)] += value
        self.applied[key] = Applied(status.version, new)
        self.changed.add(key)
        return True

    @property
    def counters(self) -> Counter[Cell]:
        """The non-zero changes at every area."""
        cells: Counter[Cell] = Counter()
        chains: dict[str | None, tuple[str, ...]] = {}
        for (year, village, counter), value in self._at_villages.items():
            if value:
                if village not in chains:
                    chains[village] = Contribution(village).areas()
                for area in chains[village]:
                    cells[(year, area, counter)] += value
        return Counter({cell: value for cell, value in cells.items() if value})

    def counters_of(self, survey_year: int, area_code: str) -> dict[str, int]:
        return counters_at(self.counters, survey_year, area_code)


def counters_at(cells: Mapping[Cell, int], survey_year: int, area_code: str) -> dict[str, int]:
    """The non-zero counters of one year and area among `cells`."""
    return {
        counter: value
        for (year, area, counter), value in cells.items()
        if year == survey_year and area == area_code and value
    }


# --- answering a query -------------------------------------------------------------------------


class Mpi(BaseModel):
    """Alkire-Foster MPI over the persons surveyed: headcount H, intensity A, M0 = H × A."""

    model_config = ConfigDict(frozen=True)

    H: float
    A: float
    M0: float


class AreaFigures(BaseModel):
    """Section 4's figures of one area and year under a mask and card filter."""

    model_config = ConfigDict(frozen=True)

    mask: str
    card: CardFilter
    households_surveyed: int
    persons_surveyed: int
    welfare_registered: int
    welfare_verified: int
    elderly: int
    disabled: int
    chronic_patients: int
    indicator_applicable: dict[int, int]
    indicator_failed: dict[int, int]
    poor_households: int
    poor_persons: int
    poor_registered: int
    target_persons: int
    target_by_dimension: dict[str, int]
    target_by_indicator: dict[int, int]
    target_rate: float
    target_households: int
    nocard_poor_households: int
    crisis_households: int
    unregistered_poor: int
    welfare_only: int
    deceased: int
    unplaced: int
    mpi_poor: Mpi
    mpi_target: Mpi
    progress: ProgressFigures = Field(
        default_factory=ProgressFigures, description="Field work (neither mask nor card apply)"
    )


def _bits(s: str) -> frozenset[Dimension]:
    return frozenset(d for d, flag in zip(DIMENSIONS, s, strict=True) if flag == "1")


def mpi(population: int, persons: int, deprivation_sum: int) -> Mpi:
    """From the population, the poor (or target) persons and the sum of their |S ∩ M|."""
    h = persons / population if population else 0.0
    a = deprivation_sum / (len(DIMENSIONS) * persons) if persons else 0.0
    return Mpi(H=h, A=a, M0=h * a)


def target_rate(target_persons: int, persons_surveyed: int) -> float:
    return 100 * target_persons / persons_surveyed if persons_surveyed else 0.0


def figures(
    counters: Mapping[str, int], mask: str = ALL_DIMENSIONS_MASK, card: CardFilter = "all"
) -> AreaFigures:
    """The figures of one area and year from its counters, under `mask` (a person or household
    is poor iff its set meets the mask) and the card filter. Raises ValueError on a bad mask."""
    chosen = mask_to_dimensions(mask)
    if card not in CARD_FILTERS:
        msg = f"card must be one of {', '.join(CARD_FILTERS)}, got {card!r}"
        raise ValueError(msg)
    sums: Counter[str] = Counter()
    applicable: dict[int, int] = {}
    failed: dict[int, int] = {}
    by_dimension = {d.value: 0 for d in DIMENSIONS}
    by_indicator: Counter[int] = Counter()
    poor_score = target_score = 0
    for key, value in counters.items():
        if not value or key.startswith(PROGRESS_PREFIX):
            continue
        kind, _, rest = key.partition(":")
        if not rest:
            sums[kind] += value
            continue
        if kind == "ind_app":
            applicable[int(rest)] = applicable.get(int(rest), 0) + value
            continue
        if kind == "ind_fail":
            failed[int(rest)] = failed.get(int(rest), 0) + value
            continue
        s, _, rest = rest.partition(":")
        cell_card, _, number = rest.partition(":")
        meets = _bits(s) & chosen
        if not meets or card not in ("all", cell_card):
            continue
        if kind == "pti":
            by_indicator[int(number)] += value
            continue
        sums[f"{kind}:{cell_card}"] += value
        if kind == "pp":
            poor_score += len(meets) * value
        elif kind == "pt":
            target_score += len(meets) * value
            for dimension in meets:
                by_dimension[dimension.value] += value

    def both(kind: str) -> int:
        return sums[f"{kind}:card"] + sums[f"{kind}:nocard"]

    persons = sums["persons"]
    target = both("pt")
    poor = both("pp")
    return AreaFigures(
        mask=mask,
        card=card,
        households_surveyed=sums["households"],
        persons_surveyed=persons,
        welfare_registered=sums["welfare_registered"],
        welfare_verified=sums["welfare_verified"],
        elderly=sums["elderly"],
        disabled=sums["disabled"],
        chronic_patients=sums["chronic"],
        indicator_applicable=dict(sorted(applicable.items())),
        indicator_failed=dict(sorted(failed.items())),
        poor_households=both("hp"),
        poor_persons=poor,
        poor_registered=sums["pp:card"],
        target_persons=target,
        target_by_dimension=by_dimension,
        target_by_indicator={n: by_indicator[n] for n in range(1, INDICATOR_COUNT + 1)},
        target_rate=target_rate(target, persons),
        target_households=both("ht"),
        nocard_poor_households=sums["hp:nocard"],
        crisis_households=both("hc"),
        unregistered_poor=sums["pp:nocard"],
        welfare_only=sums["welfare_only"],
        deceased=sums["deceased"],
        unplaced=sums["unplaced"],
        mpi_poor=mpi(persons, poor, poor_score),
        mpi_target=mpi(persons, target, target_score),
        progress=progress_figures(counters),
    )
