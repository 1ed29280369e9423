"""From TPMAP's published figures of one district to the counts a demo population must have.

Pure: no I/O. TPMAP publishes, per district, the poor and target figures under each of the 31
dimension masks. Under mask M a household is poor iff its deprivation set S meets M, so the
figure under M is the sum of the exact-set counts f(S) over the sets S that meet M. Inverting
that (inclusion-exclusion) gives f(S) for each of the 31 non-empty sets: a population with these
exact-set counts reproduces every mask's figure. The same holds for poor households, poor
persons, poor registered, target persons and, per indicator, target persons whose household
fails it.

A deprivation set is an integer whose bits are the dimensions in mask order (health = 0b10000,
access = 0b00001, `Dimension.bit`), so mask '10010' is `int('10010', 2)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from services.contracts.indicators import DIMENSIONS

SET_COUNT = 1 << len(DIMENSIONS)  # 32 deprivation sets, 0 = not poor
ALL_SETS = SET_COUNT - 1  # 0b11111
POOR_SETS = range(1, SET_COUNT)
MASKS = tuple(format(m, f"0{len(DIMENSIONS)}b") for m in POOR_SETS)
INDICATORS = range(1, 32)


def mask_bits(mask: str) -> int:
    """TPMAP's mask string as a set of dimension bits: '10010' -> 0b10010."""
    return int(mask, 2)


def set_size(deprivation: int) -> int:
    return deprivation.bit_count()


def exact_set_counts(under_mask: Callable[[int], int]) -> tuple[int, ...]:
    """The count of each exact deprivation set (index = set, index 0 is 0) from the counts under
    every mask (`under_mask(M)` = how many have a set meeting M; `under_mask(0)` is never asked).

    h(A), how many have a non-empty set inside A, is the all-dimensions count minus those whose
    set meets the complement of A; f(T) = sum over A inside T of (-1)^|T - A| h(A)."""

    def inside(dimensions: int) -> int:
        complement = ALL_SETS ^ dimensions
        return under_mask(ALL_SETS) - (under_mask(complement) if complement else 0)

    within = [inside(a) if a else 0 for a in range(SET_COUNT)]
    counts = [0] * SET_COUNT
    for target in POOR_SETS:
        total = 0
        subset = target
        while True:  # every subset of `target`, itself included, down to 0
            sign = -1 if set_size(target ^ subset) % 2 else 1
            total += sign * within[subset]
            if subset == 0:
                break
            subset = (subset - 1) & target
        counts[target] = total
    return tuple(counts)


@dataclass(frozen=True, slots=True)
class Cell:
    """The households of one deprivation set in a district and their persons, of whom
    `registered` hold a welfare registration (registered or verified) and `verified` a verified
    one."""

    households: int
    persons: int
    registered: int
    verified: int


@dataclass(frozen=True, slots=True)
class DistrictTarget:
    """What the demo population of one district must reproduce.

    `cells[S]` is exact (S = 0: not poor). `target_failing[n][S]`, target persons of set S whose
    household fails indicator n, is exact where it can be; `applicable[n]` and `failed[n]`
    (persons in households where n is not na / fails), `elderly`, `disabled` and `chronic` are
    aimed at. `notes` says where TPMAP's figures could not all hold together and what gave way.
    """

    code: str
    cells: tuple[Cell, ...]
    target_failing: Mapping[int, tuple[int, ...]]
    applicable: Mapping[int, int]
    failed: Mapping[int, int]
    elderly: int
    disabled: int
    chronic: int
    notes: tuple[str, ...] = ()

    @property
    def households(self) -> int:
        return sum(c.households for c in self.cells)

    @property
    def persons(self) -> int:
        return sum(c.persons for c in self.cells)


def district_target(code: str, published: Mapping[str, Mapping[str, Any]]) -> DistrictTarget:
    """The target of a district from its published figures: `published[mask]` holds, for each of
    the 31 masks, the figures under the platform's names (`services.reporting.tpmap_published`):
    the common ones (households_surveyed, ...) and that mask's poor and target figures."""
    common = published[MASKS[-1]]

    def exact(name: str) -> tuple[int, ...]:
        return exact_set_counts(lambda m: int(published[format_mask(m)][name]))

    def exact_indicator(n: int) -> tuple[int, ...]:
        key = str(n)
        return exact_set_counts(
            lambda m: int(published[format_mask(m)]["target_by_indicator"][key])
        )

    households, persons = exact("poor_households"), exact("poor_persons")
    registered, verified = exact("poor_registered"), exact("target_persons")
    poor_cells = [
        Cell(households[s], persons[s], registered[s], verified[s]) for s in range(SET_COUNT)
    ]
    not_poor = Cell(
        households=int(common["households_surveyed"]) - sum(households),
        persons=int(common["persons_surveyed"]) - sum(persons),
        registered=int(common["welfare_registered"]) - sum(registered),
        verified=int(common["welfare_verified"]) - sum(verified),
    )
    target = DistrictTarget(
        code=code,
        cells=(not_poor, *poor_cells[1:]),
        target_failing={n: exact_indicator(n) for n in INDICATORS},
        applicable={n: int(common["indicator_applicable"][str(n)]) for n in INDICATORS},
        failed={n: int(common["indicator_failed"][str(n)]) for n in INDICATORS},
        elderly=int(common["elderly"]),
        disabled=int(common["disabled"]),
        chronic=int(common["chronic_patients"]),
    )
    return consistent(target)


def format_mask(bits: int) -> str:
    return format(bits, f"0{len(DIMENSIONS)}b")


def consistent(target: DistrictTarget) -> DistrictTarget:
    """The target with what no population can have bent into shape, each change noted.

    TPMAP's 2561 figures hold together almost everywhere; the one kind of exception found is a
    set with more target persons than poor registered persons (districts 4204 and 6001, by one
    person), which no population can have since every target person is registered. There the
    set's registered count is raised to its target count and the same number of registered
    persons is taken from the district's non-poor, so the district's welfare figures stay exact
    and only the poor-registered figures of the masks meeting that set are off by that number.
    """
    notes = list(target.notes)
    cells = list(target.cells)
    for s in range(SET_COUNT):
        published = cells[s]
        cell = _possible(published)
        if cell == published:
            continue
        taken = 0
        if s and cell.registered > published.registered:
            # Keep the district's registered figure: take them from the non-poor if it can spare.
            spare = cells[0].registered - cells[0].verified
            taken = min(spare, cell.registered - published.registered)
            cells[0] = replace(cells[0], registered=cells[0].registered - taken)
        notes.append(
            f"{target.code} set {format_mask(s)}: published {_describe(published)} cannot be; "
            f"generated {_describe(cell)}"
            + (f" ({taken} registered taken from the non-poor)" if taken else "")
        )
        cells[s] = cell
    failing = {
        n: tuple(min(max(counts[s], 0), cells[s].verified) if s else 0 for s in range(SET_COUNT))
        for n, counts in target.target_failing.items()
    }
    return replace(target, cells=tuple(cells), target_failing=failing, notes=tuple(notes))


def _possible(cell: Cell) -> Cell:
    """The nearest cell a population can have: no negative count, a household for any persons,
    a person per household, verified <= registered <= persons (registered is raised rather than
    verified lowered, so the target figures stay)."""
    households, persons = max(cell.households, 0), max(cell.persons, 0)
    if persons and not households:
        households = 1
    persons = max(persons, households)
    verified = min(max(cell.verified, 0), persons)
    registered = min(max(cell.registered, verified), persons)
    return Cell(households, persons, registered, verified)


def _describe(cell: Cell) -> str:
    return (
        f"{cell.households} households, {cell.persons} persons, {cell.registered} registered, "
        f"{cell.verified} verified"
    )


def _apportion(quotas: list[float], total: int) -> list[int]:
    """Integers summing to `total`, each the floor of its quota or one more (largest
    remainders first, ties to the earlier)."""
    floors = [int(q) for q in quotas]
    left = total - sum(floors)
    order = sorted(range(len(quotas)), key=lambda k: (floors[k] - quotas[k], k))
    for k in order[: max(left, 0)]:
        floors[k] += 1
    return floors


def _ratio(part: int, whole: int, of: int) -> int:
    """`part / whole` of `of`, rounded (0 when `whole` is 0)."""
    return round(part * of / whole) if whole else 0


def scaled(target: DistrictTarget, scale: float) -> DistrictTarget:
    """The target of a population `scale` times the size: households apportioned over the sets
    (so the district's total is its scaled total, rounded), each set keeping its household
    size, card and per-indicator shares, rounded; persons figures follow the scaled persons."""
    if scale == 1:
        return target
    households = _apportion(
        [c.households * scale for c in target.cells], round(target.households * scale)
    )
    cells = []
    for cell, count in zip(target.cells, households, strict=True):
        persons = max(count, _ratio(cell.persons, cell.households, count))
        registered = min(persons, _ratio(cell.registered, cell.persons, persons))
        verified = min(registered, _ratio(cell.verified, cell.persons, persons))
        cells.append(Cell(count, persons, registered, verified))
    old_persons, new_persons = target.persons, sum(c.persons for c in cells)

    def persons_share(value: int) -> int:
        return _ratio(value, old_persons, new_persons)

    return replace(
        target,
        cells=tuple(cells),
        target_failing={
            n: tuple(
                min(
                    cells[s].verified,
                    _ratio(counts[s], target.cells[s].verified, cells[s].verified),
                )
                for s in range(SET_COUNT)
            )
            for n, counts in target.target_failing.items()
        },
        applicable={n: persons_share(v) for n, v in target.applicable.items()},
        failed={n: persons_share(v) for n, v in target.failed.items()},
        elderly=persons_share(target.elderly),
        disabled=persons_share(target.disabled),
        chronic=persons_share(target.chronic),
    )
