"""A district's synthetic households and members, built to reproduce its `DistrictTarget`.

Pure: no I/O, deterministic for a seed (each district draws from its own generator, so a
province comes out the same whichever other provinces are generated with it).

How the figures are met, in order:

1. **Households and welfare cards** (exact). Each deprivation set S gets its households, whose
   sizes split its persons (one each, the rest spread at random); its registered and verified
   persons are drawn among those persons.
2. **Failing indicators**. Every household of S must fail an indicator of each dimension in S
   and none of another dimension (TPMAP-RULES section 2), so dimension by dimension: target
   persons failing each indicator, per set, are met exactly on households with verified members
   (`target_failing`, which fixes every mask's per-indicator target figures); the district's
   remaining failing persons (`failed`) on the set's households without one; any household left
   without a failure in one of its dimensions then fails one. Indicators outside the dimensions
   fail the same way, on any household for the non-target share.
3. **Applicable indicators** (`applicable`): every failing household, then others until the
   persons reach the figure; for household-unit indicators the rest are `na`.
4. **Members**. A person-unit result needs a member of the indicator's ages, so every
   household keeps the age range each of its result-carrying members must have, and a household
   only takes an indicator if its members can still cover the ranges (children below 18 never
   hold the welfare cards, so they need members to spare). Ages are drawn inside those ranges,
   exactly `elderly` members are 60 or older, card holders are adults, and the carriers of
   indicators 28 and 29 are the disabled and chronic patients.

Where the greedy choices cannot meet a figure exactly, the gap is kept in `shortfalls`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import islice
from typing import Literal

from services.contracts.events import WelfareStatus
from services.contracts.indicators import (
    DIMENSIONS,
    INCOME_INDICATOR,
    Dimension,
    IndicatorResult,
    IndicatorSet,
    indicator_set_for,
)
from services.contracts.records import HOUSE_NO_MAX_LENGTH
from services.matcher.rules import ELDERLY_AGE
from tools.demo.calibration import POOR_SETS, DistrictTarget
from tools.demo.citizen_ids import synthetic_citizen_id
from tools.demo.villages import Village

SURVEY_YEAR = 2561
# A registration of round R serves survey year R + 1 (services/matcher/rules.py).
WELFARE_ROUND = 2560
# Welfare cards (MOF, round 2560) were for persons 18 and over.
ADULT_AGE = 18
OLDEST_AGE = 99


def _indicator_set() -> IndicatorSet:
    indicator_set = indicator_set_for(SURVEY_YEAR)
    if indicator_set is None:  # pragma: no cover - the catalogue ships with the contracts
        msg = f"no indicator set for survey year {SURVEY_YEAR}"
        raise RuntimeError(msg)
    return indicator_set


_INDICATOR_SET = _indicator_set()
INCOME_THRESHOLD = _INDICATOR_SET.income_threshold_baht
# Indicators the catalogue gives no ages are carried by those they concern: school leavers
# (17, 18), the disabled (28) and chronic patients (29, flags set after the ages).
_PLAUSIBLE_AGES = {17: (15, 24), 18: (15, 24)}
DISABLED_CARE, CHRONIC_CARE = 28, 29

HOUSEHOLD_UNIT = tuple(i.number for i in _INDICATOR_SET.indicators if i.unit == "household")
# The ages a member carrying each person-unit indicator's result may have.
CARRIER_AGES: dict[int, tuple[int, int]] = {
    i.number: _PLAUSIBLE_AGES.get(
        i.number,
        (
            i.min_age if i.min_age is not None else 0,
            i.max_age if i.max_age is not None else OLDEST_AGE,
        ),
    )
    for i in _INDICATOR_SET.indicators
    if i.unit == "person"
}
# What the contract allows, for a last resort when a dimension must be failed.
CONTRACT_AGES: dict[int, tuple[int, int]] = {
    i.number: (
        i.min_age if i.min_age is not None else 0,
        i.max_age if i.max_age is not None else OLDEST_AGE,
    )
    for i in _INDICATOR_SET.indicators
    if i.unit == "person"
}
DIMENSION_INDICATORS: dict[Dimension, tuple[int, ...]] = {
    d: tuple(i.number for i in _INDICATOR_SET.by_dimension(d)) for d in DIMENSIONS
}
_DIMENSIONS_MASK = sum(1 << n for numbers in DIMENSION_INDICATORS.values() for n in numbers)
OTHER_INDICATORS = tuple(i.number for i in _INDICATOR_SET.indicators if i.dimension is None)
# Dimensions whose indicators all need members of given ages come first, while members are free.
_DIMENSION_ORDER = sorted(
    DIMENSIONS, key=lambda d: sum(n in HOUSEHOLD_UNIT for n in DIMENSION_INDICATORS[d])
)
# Narrow age ranges first: a wide one (15 and over) fits almost any household later.
_APPLICABILITY_ORDER = sorted(
    (i.number for i in _INDICATOR_SET.indicators),
    key=lambda n: CARRIER_AGES[n][1] - CARRIER_AGES[n][0] if n in CARRIER_AGES else OLDEST_AGE + 1,
)
_SURVEY_START = date(2018, 1, 8)
_SURVEY_DAYS = 110
_REGISTRY_START = datetime(2017, 9, 1, 9, tzinfo=timezone(timedelta(hours=7)))
_REGISTRY_DAYS = 120
_DEATHS_START = date(2019, 1, 1)  # after data year 2561: the figures of 2561 do not change
_DEATH_RATE_ELDERLY = 0.015
_REJECTED_RATE = 0.04
_BEDRIDDEN_RATE = 0.2
_CHILD_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class DemoMember:
    citizen_id: str
    age: int
    sex: Literal["M", "F"]
    disabled: bool
    chronic_patient: bool
    bedridden: bool
    indicators: Mapping[str, IndicatorResult]
    welfare: WelfareStatus | None
    welfare_updated_at: datetime | None
    died_on: date | None


@dataclass(frozen=True, slots=True)
class DemoHousehold:
    household_id: str
    village_code: str
    house_no: str
    surveyed_on: date
    income_per_capita_baht: int | None
    happiness_score: float
    indicators: Mapping[str, IndicatorResult]
    members: tuple[DemoMember, ...]


@dataclass(frozen=True, slots=True)
class DistrictPopulation:
    code: str
    households: list[DemoHousehold]
    # What the greedy choices could not meet: (figure, indicator, set) -> persons missing (> 0)
    # or over (< 0); empty when every aimed-at figure was met.
    shortfalls: Mapping[tuple[str, int, int], int]


@dataclass(slots=True, eq=False)
class _Draft:
    """A household while it is being decided."""

    cell: int  # its deprivation set
    size: int
    verified: int = 0
    registered: int = 0  # registered, not verified
    failed: int = 0  # bit n: fails indicator n
    applicable: int = 0  # bit n: indicator n is not na
    ranges: list[tuple[int, int]] = field(default_factory=list)  # ages of result carriers
    carriers: dict[int, int] = field(default_factory=dict)  # indicator -> index in ranges

    @property
    def cards(self) -> int:
        return self.verified + self.registered

    def children(self) -> int:
        return sum(high < ADULT_AGE for _, high in self.ranges)


_Spot = tuple[int, int, int]  # index in ranges (-1: a new member), its new age range


def _verified_blocks(
    verified: int,
    households: int,
    sums: Collection[int] = (),
    partitions: Collection[tuple[int, ...]] = (),
    most: int | None = None,
) -> list[int]:
    """How many verified members each household with any has (in at most `most` households).

    Preferably one each while that leaves a third of the set's households without any (the
    set's failing persons who are not target persons need households of their own), else one
    or two. The blocks must let every per-indicator figure of the set (`sums`) be a sum of
    blocks, and each dimension's figures that split the verified exactly (`partitions`) split
    the blocks: for a few verified, the first split of them into households that does is
    searched for; for more, each block is at most one more than all smaller ones together, so
    that any count up to the total is a sum of blocks.
    """
    if not verified:
        return []
    most = households if most is None else most
    preferred = min(_preferred_with_targets(verified, households), most)
    if verified <= _SEARCHED_VERIFIED:
        counts = [preferred, *range(preferred + 1, most + 1), *range(preferred - 1, 0, -1)]
        for count in counts:
            for blocks in islice(_splits(verified, count, verified), _SEARCHED_SPLITS):
                if _makes(blocks, sums, partitions):
                    return list(blocks)
    return _complete_blocks(verified, preferred)


def _preferred_with_targets(verified: int, households: int) -> int:
    if not verified:
        return 0
    return min(max(min(verified, households - households // 3), -(-verified // 2), 1), households)


_SEARCHED_VERIFIED = 24
_SEARCHED_SPLITS = 2000


def _splits(total: int, count: int, largest: int) -> Iterator[tuple[int, ...]]:
    """Ways to split `total` into `count` blocks of at most `largest`, largest block first,
    those with the smallest largest block first."""
    if count == 0:
        if total == 0:
            yield ()
        return
    for first in range(-(-total // count), min(largest, total - count + 1) + 1):
        for rest in _splits(total - first, count - 1, first):
            yield (first, *rest)


def _makes(
    blocks: Sequence[int], sums: Collection[int], partitions: Collection[tuple[int, ...]]
) -> bool:
    reachable = 1  # bit t: some blocks add up to t
    for block in blocks:
        reachable |= reachable << block
    if any(not reachable >> t & 1 for t in sums):
        return False
    return all(_split_into(sorted(blocks, reverse=True), list(parts)) for parts in partitions)


def _split_into(blocks: list[int], room: list[int]) -> bool:
    """Whether the blocks (largest first) can be shared out to fill every part of `room`."""
    if not blocks:
        return not any(room)
    block, tried = blocks[0], set()
    for k, left in enumerate(room):
        if left >= block and left not in tried:
            tried.add(left)
            room[k] -= block
            if _split_into(blocks[1:], room):
                room[k] += block
                return True
            room[k] += block
    return False


def _complete_blocks(verified: int, count: int) -> list[int]:
    """`count` blocks adding up to `verified`, each at most one more than all smaller ones
    together (as far as `count` allows), the largest as small as that allows."""

    def ramp(cap: int) -> list[int]:
        blocks: list[int] = []
        total = 0
        for _ in range(count):
            blocks.append(min(cap, total + 1))
            total += blocks[-1]
        return blocks

    low, high = 1, verified
    while low < high:
        middle = (low + high) // 2
        if sum(ramp(middle)) >= verified:
            high = middle
        else:
            low = middle + 1
    blocks = ramp(low)
    # Too few households for the property (more than 2^count - 1 verified): the largest take
    # the rest, as they must.
    blocks[-1] += max(verified - sum(blocks), 0)
    excess = sum(blocks) - verified
    for k in reversed(range(len(blocks))):  # trimming the largest keeps the property
        cut = min(excess, blocks[k] - 1)
        blocks[k] -= cut
        excess -= cut
    return blocks


def _bit(n: int) -> int:
    return 1 << n


def _mask_of(indicators: Iterable[int]) -> int:
    mask = 0
    for n in indicators:
        mask |= _bit(n)
    return mask


class _Solver:
    def __init__(self, target: DistrictTarget, rng: random.Random) -> None:
        self.target = target
        self.rng = rng
        self.elderly_left = target.elderly  # members still allowed to be required 60+
        self.failed_persons: Counter[int] = Counter()
        self.applicable_persons: Counter[int] = Counter()
        self.target_failing: Counter[tuple[int, int]] = Counter()
        self.most_with_targets = self._most_with_targets()
        self.by_cell: list[list[_Draft]] = [self._households(s) for s in range(len(target.cells))]
        self.drafts = [d for cell in self.by_cell for d in cell]

    # --- 1. households and cards -----------------------------------------------------------

    def _most_with_targets(self) -> list[int]:
        """How many households of each set may have verified members: an indicator of a
        dimension failed by persons but by no target person needs a household without any in
        one of the dimension's sets, so where the sets would have too few, the largest give
        up households with verified members."""
        cells = self.target.cells
        most = [
            _preferred_with_targets(c.verified, c.households) if s else 0
            for s, c in enumerate(cells)
        ]
        for dimension in DIMENSIONS:
            sets = [s for s in POOR_SETS if s & dimension.bit and cells[s].households]
            needed = sum(
                1
                for n in DIMENSION_INDICATORS[dimension]
                if self.target.failed[n] and not any(self.target.target_failing[n])
            )
            while sum(cells[s].households - most[s] for s in sets) < needed:
                shrinkable = [s for s in sets if most[s] > 1]
                if not shrinkable:
                    break
                most[max(shrinkable, key=lambda s: most[s])] -= 1
        return [m if m else c.households for m, c in zip(most, cells, strict=True)]

    def _households(self, s: int) -> list[_Draft]:
        """The set's households: verified members in blocks any per-indicator figure can be
        made of, registered members at random, then the other persons at random."""
        cell = self.target.cells[s]
        if not cell.households:
            return []
        failing = {n: self.target.target_failing[n][s] for n in range(1, 32)}
        partitions = [
            parts
            for dimension in DIMENSIONS
            if s & dimension.bit
            for parts in [tuple(failing[n] for n in DIMENSION_INDICATORS[dimension] if failing[n])]
            if len(parts) > 1 and sum(parts) == cell.verified
        ]
        blocks = _verified_blocks(
            cell.verified,
            cell.households,
            {t for t in failing.values() if 0 < t < cell.verified},
            partitions,
            self.most_with_targets[s],
        )
        drafts = [_Draft(s, 0, verified=v) for v in blocks]
        drafts += [_Draft(s, 0) for _ in range(cell.households - len(blocks))]
        self.rng.shuffle(drafts)
        # Every household needs a member; a card holder can be that member.
        spare = cell.persons - cell.verified - sum(not d.verified for d in drafts)
        for _ in range(cell.registered - cell.verified):
            pool = drafts if spare > 0 else [d for d in drafts if not d.cards]
            holder = pool[self.rng.randrange(len(pool))]
            spare -= 1 if holder.cards else 0
            holder.registered += 1
        for d in drafts:
            d.size = max(d.cards, 1)
        for _ in range(spare):
            drafts[self.rng.randrange(len(drafts))].size += 1
        return drafts

    # --- ages of the members carrying results -------------------------------------------------

    def _fit(self, d: _Draft, ages: tuple[int, int], new_member: bool) -> _Spot | None:
        """Where a carrier of ages `ages` fits: a member already carrying a result whose range
        overlaps, else (if allowed) a new member; None when the household cannot have one."""
        low, high = ages
        for k, (old_low, old_high) in enumerate(d.ranges):
            new_low = old_low if old_low > low else low
            new_high = old_high if old_high < high else high
            if new_low > new_high:
                continue
            if new_high < ADULT_AGE <= old_high and not _room_for_child(d):
                continue
            if new_low >= ELDERLY_AGE > old_low and self.elderly_left <= 0:
                continue
            return k, new_low, new_high
        if not new_member or len(d.ranges) >= d.size:
            return None
        if high < ADULT_AGE and not _room_for_child(d):
            return None
        if low >= ELDERLY_AGE and self.elderly_left <= 0:
            return None
        return -1, low, high

    def _occupy(self, d: _Draft, n: int, spot: _Spot) -> None:
        k, low, high = spot
        was_elderly = k >= 0 and d.ranges[k][0] >= ELDERLY_AGE
        if k < 0:
            d.ranges.append((low, high))
            k = len(d.ranges) - 1
        else:
            d.ranges[k] = (low, high)
        if low >= ELDERLY_AGE and not was_elderly:
            self.elderly_left -= 1
        d.carriers[n] = k

    def _mark(
        self,
        d: _Draft,
        n: int,
        *,
        fail: bool,
        new_member: bool,
        ages: tuple[int, int] | None,
        grow: bool = False,
        spot: _Spot | None = None,
    ) -> bool:
        """Makes indicator n applicable (and failing if `fail`) in d, if d can carry it (at
        `spot` if the caller just found it); with `grow`, a household too small to have a
        carrier of the ages gets a member from another of its set (while sizes are still being
        adjusted)."""
        if ages is not None and n not in d.carriers:
            spot = spot or self._fit(d, ages, new_member)
            if spot is None and grow and self._grow(d):
                spot = self._fit(d, ages, new_member)
            if spot is None:
                return False
            self._occupy(d, n, spot)
        bit = _bit(n)
        if not d.applicable & bit:
            d.applicable |= bit
            self.applicable_persons[n] += d.size
        if fail and not d.failed & bit:
            d.failed |= bit
            self.failed_persons[n] += d.size
            if d.verified and d.cell:
                self.target_failing[n, d.cell] += d.verified
        return True

    def _take(
        self,
        pools: Sequence[Sequence[_Draft]],
        n: int,
        need: int,
        *,
        fail: bool,
        by_verified: bool,
        may_exceed: bool = False,
    ) -> int:
        """Marks n on households of the pools, in order, each pool first where an existing
        carrier fits and then with new members, while their weight (verified members or size)
        leaves a reserve of `need`; the rest is made exactly of the remaining households if any
        of them add up to it, else taken while they fit; with `may_exceed` (sizes will still be
        adjusted) the smallest one that can carry n is taken rather than none. Returns what is
        left of `need`."""
        bit = _bit(n)
        ages = CARRIER_AGES.get(n)
        # (new member allowed, household may grow): an existing carrier first, growing last.
        passes = ((False, False), (True, False), (True, fail)) if ages else ((True, False),)
        if by_verified:  # one pass, or a smaller block could be taken before a larger one
            passes = ((True, fail),)
        ordered = [sorted(p, key=lambda d: -d.verified) if by_verified else p for p in pools]
        # Verified blocks are taken largest first, in the pools' order (that keeps the order's
        # preference, and the blocks are made for it); persons leave a reserve to be made exact.
        reserve = 0 if by_verified else _RESERVE
        for pool in ordered:
            for new_member, grow in passes:
                for d in pool:
                    if need <= 0:
                        return need
                    weight = d.verified if by_verified else d.size
                    if (
                        0 < weight <= need - reserve
                        and not (d.failed if fail else d.applicable) & bit
                        and (by_verified or self._affordable(d, ages, need))
                        and self._mark(d, n, fail=fail, new_member=new_member, ages=ages, grow=grow)
                    ):
                        need -= weight
        if need <= 0:
            return need
        return self._finish(
            ordered, n, need, fail=fail, by_verified=by_verified, may_exceed=may_exceed
        )

    def _finish(
        self,
        ordered: list[Sequence[_Draft]],
        n: int,
        need: int,
        *,
        fail: bool,
        by_verified: bool,
        may_exceed: bool,
    ) -> int:
        """The end of `_take`: an exact sum of the households left if there is one, else as
        many as fit."""
        bit = _bit(n)
        ages = CARRIER_AGES.get(n)

        def weight_of(d: _Draft) -> int:
            return d.verified if by_verified else d.size

        unmarked = [
            d
            for pool in ordered
            for d in pool
            if not (d.failed if fail else d.applicable) & bit and weight_of(d) > 0
        ]
        able = list(
            islice(
                (
                    d
                    for d in unmarked
                    if ages is None or n in d.carriers or self._fit(d, ages, True) is not None
                ),
                _EXACT_CANDIDATES,
            )
        )
        # Households that can carry n as they are; for verified blocks (whose weight growing
        # does not change) also those that must grow first.
        rounds = [(able, False)] + ([(unmarked, True)] if by_verified and fail else [])
        for candidates, grow in rounds:
            exact = _subset_with_sum(candidates, need, by_verified) if need > 0 else None
            for d in exact or ():
                if self._mark(d, n, fail=fail, new_member=True, ages=ages, grow=grow):
                    need -= weight_of(d)
        for d in able:
            if 0 < weight_of(d) <= need and self._mark(d, n, fail=fail, new_member=True, ages=ages):
                need -= weight_of(d)
        if need > 0 and may_exceed and unmarked:
            d = min(unmarked, key=weight_of)
            if self._mark(d, n, fail=fail, new_member=True, ages=ages, grow=fail):
                need -= weight_of(d)
        return need

    def _grow(self, d: _Draft) -> bool:
        """Moves a member who holds no card and carries nothing into d from another household
        of its set that can spare one, if possible one failing the same dimensions'
        indicators (so their figures do not change); False when none can."""
        drafts = self.by_cell[d.cell]
        profile = d.failed & _DIMENSIONS_MASK

        def can_give(x: _Draft, same_profile: bool) -> bool:
            return (
                x is not d
                and _spare(x) > 0
                and (not same_profile or x.failed & _DIMENSIONS_MASK == profile)
            )

        donor = None
        for same_profile in (True, False):
            for _ in range(32):  # mostly a random one; looking through them all is the last resort
                candidate = drafts[self.rng.randrange(len(drafts))]
                if can_give(candidate, same_profile):
                    donor = candidate
                    break
            else:
                donor = next((x for x in drafts if can_give(x, same_profile)), None)
            if donor is not None:
                break
        if donor is None:
            return False
        donor.size -= 1
        d.size += 1
        for source, change in ((donor, -1), (d, 1)):
            for n in _bits(source.failed):
                self.failed_persons[n] += change
            for n in _bits(source.applicable):
                self.applicable_persons[n] += change
        return True

    def _affordable(self, d: _Draft, ages: tuple[int, int] | None, need: int) -> bool:
        """A household that would need a new member of 60+ must be at least as large as the
        persons still needed per elderly person still available, or the elderly run out
        before their indicators reach their figures."""
        if ages is None or ages[0] < ELDERLY_AGE:
            return True
        if any(low >= ELDERLY_AGE for low, _ in d.ranges):
            return True
        return d.size * self.elderly_left >= need

    def _shuffled(self, drafts: Iterable[_Draft]) -> list[_Draft]:
        items = list(drafts)
        self.rng.shuffle(items)
        return items

    def _ordered_for(self, n: int, drafts: Iterable[_Draft]) -> list[_Draft]:
        """Random order; for the elderly's indicators larger households first (by chance in
        proportion to size), so as many persons live with the elderly as TPMAP counts with no
        more households than there are elderly."""
        ages = CARRIER_AGES.get(n)
        if ages is None or ages[0] < ELDERLY_AGE:
            return self._shuffled(drafts)
        random_ = self.rng.random
        return sorted(drafts, key=lambda d: random_() ** (1 / d.size), reverse=True)

    def shortfalls(self) -> dict[tuple[str, int, int], int]:
        """Every aimed-at figure the choices missed: persons missing (> 0) or over (< 0)."""
        target = self.target
        gaps = {("failed", n, 0): target.failed[n] - self.failed_persons[n] for n in range(1, 32)}
        gaps |= {
            ("applicable", n, 0): target.applicable[n] - self.applicable_persons[n]
            for n in range(1, 32)
        }
        gaps |= {
            ("target_failing", n, s): counts[s] - self.target_failing[n, s]
            for n, counts in target.target_failing.items()
            for s in POOR_SETS
        }
        return {key: gap for key, gap in gaps.items() if gap}

    # --- 2. failing indicators ----------------------------------------------------------------

    def fail_indicators(self) -> None:
        """The dimensions' indicators, their sizes adjusted, then the others (so that a move
        between households of a dimension's indicators has no side effect on the others)."""
        for dimension in _DIMENSION_ORDER:
            self._fail_dimension(dimension)
        self.rebalance()
        for n in OTHER_INDICATORS:
            self._fail_other(n)
        self.rebalance()

    def _fail_dimension(self, dimension: Dimension) -> None:
        indicators = DIMENSION_INDICATORS[dimension]
        covering = _mask_of(indicators)
        sets = [s for s in POOR_SETS if s & dimension.bit]
        for s in sets:
            with_targets = [d for d in self.by_cell[s] if d.verified]
            for n in sorted(indicators, key=lambda n: -self.target.target_failing[n][s]):
                need = self.target.target_failing[n][s] - self.target_failing[n, s]
                pools = self._covering_pools(with_targets, covering, n)
                self._take(pools, n, need, fail=True, by_verified=True)
            self._share_out(with_targets, covering, indicators)
        without_targets = self._shuffled(d for s in sets for d in self.by_cell[s] if not d.verified)
        self._share_out(without_targets, covering, indicators)
        # Every person of the dimension's sets now counts for one of its indicators, so what
        # the figures still lack in total is what households failing two of them may add
        # (their persons count twice); the figures' split is left to the size adjustment.
        twice = sum(self.target.failed[n] - self.failed_persons[n] for n in indicators)
        for n in indicators:
            need = min(self.target.failed[n] - self.failed_persons[n], twice)
            if need > 0:
                pool = self._ordered_for(n, without_targets)
                twice -= need - self._take([pool], n, need, fail=True, by_verified=False)

    def _share_out(self, drafts: list[_Draft], covering: int, indicators: tuple[int, ...]) -> None:
        """Each household not failing the dimension yet fails the indicator furthest below its
        figure that it can carry, so every indicator with persons to reach gets households
        (their sizes are adjusted later); past every figure, the least exceeded."""
        for d in drafts:
            if d.failed & covering:
                continue
            # Furthest below its figure first; of those equally far, the one with most persons.
            choices = sorted(
                indicators,
                key=lambda n: (
                    self.failed_persons[n] - self.target.failed[n],
                    -self.target.failed[n],
                ),
            )
            if not any(
                self._mark(d, n, fail=True, new_member=True, ages=ages.get(n), grow=True)
                for ages in (CARRIER_AGES, CONTRACT_AGES)
                for n in choices
            ):  # pragma: no cover - indicator 28 (any age) fits every household
                msg = f"a household of set {d.cell} cannot fail any indicator of {indicators}"
                raise AssertionError(msg)

    def _covering_pools(self, drafts: list[_Draft], covering: int, n: int) -> list[list[_Draft]]:
        """Households not yet failing the dimension first, so that every one of them does."""
        return [
            self._ordered_for(n, (d for d in drafts if not d.failed & covering)),
            self._ordered_for(n, (d for d in drafts if d.failed & covering)),
        ]

    def _fail_other(self, n: int) -> None:
        """An indicator of no dimension: target persons per set, then the rest anywhere."""
        for s in POOR_SETS:
            need = self.target.target_failing[n][s]
            if need:
                pool = self._ordered_for(n, (d for d in self.by_cell[s] if d.verified))
                self._take([pool], n, need, fail=True, by_verified=True)
        free = self._ordered_for(n, (d for d in self.drafts if not (d.cell and d.verified)))
        need = self.target.failed[n] - self.failed_persons[n]
        self._take([free], n, need, fail=True, by_verified=False)

    # --- 3. household sizes -----------------------------------------------------------------

    def rebalance(self) -> None:
        """Moves members who hold no card and carry no result between households of the same
        set (so no set, card or target figure changes) while that brings the failing persons of
        the indicators closer to their figures: where a dimension's indicators split its
        persons exactly, the households failing each one must hold exactly its persons.

        A dimension's errors together say how many of its persons count twice (in households
        failing two of its indicators) beyond its figures; weighing that sum as well lets a
        move shrink such a household before others shift persons between its indicators."""
        error = _Errors({n: self.failed_persons[n] - self.target.failed[n] for n in range(1, 32)})
        for drafts in self.by_cell:
            while True:
                classes: dict[int, list[_Draft]] = {}
                for d in drafts:
                    classes.setdefault(d.failed, []).append(d)
                while self._move_best(classes, error):
                    pass
                if not self._switch_one(drafts, error):
                    break
        self.failed_persons, self.applicable_persons = Counter(), Counter()
        for d in self.drafts:
            for n in _bits(d.failed):
                self.failed_persons[n] += d.size
            for n in _bits(d.applicable):
                self.applicable_persons[n] += d.size

    def _switch_one(self, drafts: list[_Draft], error: _Errors) -> bool:
        """Makes one household without target persons fail another indicator of a dimension
        instead of the only one of it it fails, where that helps (moving members cannot
        create a household of an indicator where the set has none); False when none helps."""
        for d in drafts:
            if d.verified or not d.cell:
                continue
            for dimension, numbers in DIMENSION_INDICATORS.items():
                failing = [n for n in numbers if d.failed & _bit(n)]
                if len(failing) != 1 or not d.cell & dimension.bit:
                    continue
                (old,) = failing
                for new in numbers:
                    if new == old or error.gain(_bit(old), _bit(new), d.size) <= 0:
                        continue
                    if self._mark(d, new, fail=True, new_member=True, ages=CARRIER_AGES.get(new)):
                        self._unmark(d, old)
                        error.move(_bit(old), _bit(new), d.size)
                        return True
        return False

    def _unmark(self, d: _Draft, n: int) -> None:
        """d no longer fails (nor is applicable to) n; its carrier, if no other indicator
        needs that member, becomes a member of any age."""
        d.failed &= ~_bit(n)
        d.applicable &= ~_bit(n)
        self.failed_persons[n] -= d.size
        self.applicable_persons[n] -= d.size
        k = d.carriers.pop(n, None)
        if k is not None and k not in d.carriers.values():
            if d.ranges[k][0] >= ELDERLY_AGE:
                self.elderly_left += 1
            d.ranges[k] = (0, OLDEST_AGE)

    def _move_best(self, classes: dict[int, list[_Draft]], error: _Errors) -> bool:
        """One move of members between two classes (households failing the same indicators)
        of a set, the one that helps most; False when none helps."""
        over, under = error.signs()
        senders = [f for f, ds in classes.items() if any(_can_give(d) for d in ds)]
        best, best_gain = None, 0
        for source in senders:
            for destination in classes:
                leaving, arriving = source & ~destination, destination & ~source
                if not (leaving & over or arriving & under):
                    continue
                gain = error.gain(leaving, arriving)
                if gain > best_gain:
                    best, best_gain = (source, destination), gain
        if best is None:
            return False
        source, destination = best
        leaving, arriving = source & ~destination, destination & ~source
        givers = sorted((d for d in classes[source] if _can_give(d)), key=lambda d: -_spare(d))
        takers = sorted(classes[destination], key=lambda d: d.size)
        moved = 0
        for giver in givers:
            while _can_give(giver) and error.gain(leaving, arriving) > 0:
                _give(giver, takers[moved % len(takers)])
                moved += 1
                error.move(leaving, arriving)
        return moved > 0

    # --- 4. applicable indicators -------------------------------------------------------------

    def make_applicable(self) -> None:
        """Indicators covering the most persons choose their households first."""
        shuffled = self._shuffled(self.drafts)
        for n in sorted(range(1, 32), key=lambda n: -self.target.applicable[n]):
            need = self.target.applicable[n] - self.applicable_persons[n]
            if n in CARRIER_AGES:
                pool = self._ordered_for(n, self.drafts)
            else:  # only which few are left out depends on the order: a turn of one suffices
                turn = self.rng.randrange(len(shuffled)) if shuffled else 0
                pool = shuffled[turn:] + shuffled[:turn]
            if not self._all_but(pool, n, need):
                self._take([pool], n, need, fail=False, by_verified=False)

    def _all_but(self, pool: list[_Draft], n: int, need: int) -> bool:
        """When n must cover nearly every household that can carry it, makes it applicable in
        all of them but a few whose persons add up to the excess (which can be exact where
        picking the many cannot), leaving out first those that would need a new member.
        False (nothing done) when n covers too few for that."""
        bit = _bit(n)
        unmarked = [d for d in pool if not d.applicable & bit]
        if (sum(d.size for d in unmarked) - need) * _COMPLEMENT_SHARE > need:
            return False  # not even if every household could carry n
        ages = CARRIER_AGES.get(n)
        able: list[tuple[_Draft, _Spot | None]] = []
        for d in unmarked:
            spot = None if ages is None or n in d.carriers else self._fit(d, ages, True)
            if spot is not None or ages is None or n in d.carriers:
                able.append((d, spot))
        excess = sum(d.size for d, _ in able) - need
        if excess * _COMPLEMENT_SHARE > need:
            return False
        # Those that would need a new member are the first left out.
        able.sort(key=lambda item: not (item[1] is not None and item[1][0] < 0))
        left_out = _subset_with_sum([d for d, _ in able], excess, by_verified=False)
        skipped = {id(d) for d in left_out or ()}
        if ages is None and left_out is not None:  # the common case, made quick
            for d, _ in able:
                if id(d) not in skipped:
                    d.applicable |= bit
                    self.applicable_persons[n] += d.size
            return True
        for d, found in able:
            if id(d) in skipped:
                continue
            if left_out is None and 0 < d.size <= excess:
                excess -= d.size
                continue
            # A spot found before others were marked is still right (marking n elsewhere
            # changes no other household) unless it takes one of the elderly, who may have run
            # out meanwhile: then it is looked for again.
            spot = found if found is None or found[1] < ELDERLY_AGE else None
            self._mark(d, n, fail=False, new_member=True, ages=ages, spot=spot)
        return True


# An indicator is made applicable by leaving some out when those left out are at most a quarter
# of those made applicable.
_COMPLEMENT_SHARE = 4
# What the first, greedy pass of a choice leaves to be made exactly of the rest.
_RESERVE = 24
_EXACT_LIMIT = 256  # the largest remainder looked for as an exact sum of households
_EXACT_CANDIDATES = 5000


def _subset_with_sum(
    drafts: Sequence[_Draft], total: int, by_verified: bool
) -> list[_Draft] | None:
    """Households whose weights (verified members or size) add up to exactly `total`, if a
    few thousand of them can (dynamic programming over the sums)."""
    if total > _EXACT_LIMIT:
        return None
    reached: dict[int, tuple[int, int]] = {0: (-1, -1)}  # sum -> (previous sum, household)
    for index, d in enumerate(drafts[:_EXACT_CANDIDATES]):
        weight = d.verified if by_verified else d.size
        for subtotal in sorted(reached, reverse=True):
            grown = subtotal + weight
            if grown <= total and grown not in reached:
                reached[grown] = (subtotal, index)
        if total in reached:
            chosen = []
            at = total
            while at:
                at, used = reached[at]
                chosen.append(drafts[used])
            return chosen
    return None


def _spare(d: _Draft) -> int:
    """Members the household can give away: beyond its result carriers, and beyond its
    children together with its card holders (who are adults)."""
    return d.size - max(len(d.ranges), d.children() + max(d.cards, 1))


def _room_for_child(d: _Draft) -> bool:
    """Whether one more member can be a child: the card holders are adults, and somebody is."""
    return d.size - max(d.cards, 1) - d.children() > 0


def _can_give(d: _Draft) -> bool:
    """Whether the household can give a member carrying nothing: one without a card, or else
    one holding a registration that is not verified (it moves with them, within the set)."""
    if _spare(d) > 0:
        return True
    rest = d.size - 1
    return bool(d.registered) and rest >= max(len(d.ranges), d.children() + max(d.cards - 1, 1))


def _give(giver: _Draft, taker: _Draft) -> None:
    if _spare(giver) <= 0:
        giver.registered -= 1
        taker.registered += 1
    giver.size -= 1
    taker.size += 1


_BITS: dict[int, tuple[int, ...]] = {}


def _bits(mask: int) -> tuple[int, ...]:
    bits = _BITS.get(mask)
    if bits is None:
        bits = _BITS[mask] = tuple(n for n in range(1, 32) if mask & (1 << n))
    return bits


_DIMENSION_OF = {n: d for d, numbers in DIMENSION_INDICATORS.items() for n in numbers}
# How much a dimension's summed error weighs against its indicators' own.
_DIMENSION_WEIGHT = 2


class _Errors:
    """Failing persons minus figure, per indicator and summed per dimension."""

    def __init__(self, by_indicator: dict[int, int]) -> None:
        self.by_indicator = by_indicator
        self.by_dimension = {
            d: sum(by_indicator[n] for n in numbers) for d, numbers in DIMENSION_INDICATORS.items()
        }

    def signs(self) -> tuple[int, int]:
        """Bits of the indicators too many persons fail (or whose dimension has too many),
        and of those too few do."""
        over = under = 0
        for n, gap in self.by_indicator.items():
            dimension_gap = self.by_dimension.get(_DIMENSION_OF[n], 0) if n in _DIMENSION_OF else 0
            if gap > 0 or dimension_gap > 0:
                over |= 1 << n
            if gap < 0 or dimension_gap < 0:
                under |= 1 << n
        return over, under

    def _deltas(self, leaving: int, arriving: int, count: int) -> list[tuple[int, int]]:
        return [(n, -count) for n in _bits(leaving)] + [(n, count) for n in _bits(arriving)]

    def gain(self, leaving: int, arriving: int, count: int = 1) -> int:
        """How much closer to their figures the indicators get when `count` members move from
        a household failing `leaving` (and not `arriving`) to one failing `arriving`."""
        gain = 0
        by_dimension: dict[Dimension, int] = {}
        for n, delta in self._deltas(leaving, arriving, count):
            gap = self.by_indicator[n]
            gain += abs(gap) - abs(gap + delta)
            if n in _DIMENSION_OF:
                d = _DIMENSION_OF[n]
                by_dimension[d] = by_dimension.get(d, 0) + delta
        for d, delta in by_dimension.items():
            gap = self.by_dimension[d]
            gain += _DIMENSION_WEIGHT * (abs(gap) - abs(gap + delta))
        return gain

    def move(self, leaving: int, arriving: int, count: int = 1) -> None:
        for n, delta in self._deltas(leaving, arriving, count):
            self.by_indicator[n] += delta
            if n in _DIMENSION_OF:
                self.by_dimension[_DIMENSION_OF[n]] += delta


# --- 4. members -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Person:
    age: int
    carries: list[int] = field(default_factory=list)  # indicators whose result they carry
    disabled: bool = False
    chronic: bool = False


def _elderly_age(rng: random.Random, low: int, high: int) -> int:
    """60 and over, fewer at each older age."""
    low = max(low, ELDERLY_AGE)
    return min(high, low + int(rng.expovariate(1 / 9)))


class _Ages:
    """Decides every member's age: the carriers' ranges, exactly `elderly` members 60+, enough
    adults for the welfare cards."""

    def __init__(self, solver: _Solver) -> None:
        self.solver = solver
        self.rng = solver.rng
        # Per household: indexes of carriers chosen 60+ beyond those that must be, and how many
        # members carrying nothing are 60+.
        self.older: dict[int, set[int]] = {}
        self.older_free: Counter[int] = Counter()

    def choose_elderly(self) -> int:
        """Chooses the members that are 60+ beyond those required; returns how many of the
        district's elderly could not be placed."""
        left = self.solver.elderly_left
        drafts = self.solver.drafts
        with_elderly = [
            k for k, d in enumerate(drafts) if any(low >= ELDERLY_AGE for low, _ in d.ranges)
        ]
        elderly_set = set(with_elderly)
        others = [k for k in range(len(drafts)) if k not in elderly_set]
        self.rng.shuffle(with_elderly)
        self.rng.shuffle(others)
        # A partner for the elderly first, then one in other households, then anyone who may be.
        rounds = ((with_elderly, 1), (others, 1), (with_elderly + others, OLDEST_AGE))
        for households, per_household in rounds:
            for k in households:
                if left <= 0:
                    return 0
                left -= self._make_older(k, min(left, per_household))
        return left

    def _make_older(self, k: int, count: int) -> int:
        d = self.solver.drafts[k]
        made = 0
        chosen = self.older.setdefault(k, set())
        for index, (low, high) in enumerate(d.ranges):
            if made == count:
                return made
            if low < ELDERLY_AGE <= high and index not in chosen:
                chosen.add(index)
                made += 1
        free = d.size - len(d.ranges) - self.older_free[k]
        extra = min(free, count - made)
        self.older_free[k] += extra
        return made + extra

    def persons(self, k: int) -> list[_Person]:
        d = self.solver.drafts[k]
        rng = self.rng
        adults_needed = max(d.cards, 1)
        people: list[_Person | None] = [None] * len(d.ranges)
        older = self.older.get(k, set())
        for index, (low, high) in enumerate(d.ranges):  # the 60+ first: they are adults
            if low >= ELDERLY_AGE or index in older:
                people[index] = _Person(_elderly_age(rng, low, high))
                adults_needed -= 1
        free = [
            _Person(_elderly_age(rng, ELDERLY_AGE, OLDEST_AGE)) for _ in range(self.older_free[k])
        ]
        adults_needed -= len(free)
        for index, (low, high) in enumerate(d.ranges):
            if people[index] is not None:
                continue
            top = min(high, ELDERLY_AGE - 1)
            if adults_needed > 0 and top >= ADULT_AGE:
                people[index] = _Person(rng.randint(max(low, ADULT_AGE), top))
                adults_needed -= 1
            else:
                people[index] = _Person(rng.randint(low, top))
        for _ in range(d.size - len(d.ranges) - len(free)):
            if adults_needed > 0 or rng.random() >= _CHILD_SHARE:
                free.append(_Person(rng.randint(ADULT_AGE, ELDERLY_AGE - 1)))
                adults_needed -= 1
            else:
                free.append(_Person(rng.randint(0, ADULT_AGE - 1)))
        carriers = [p for p in people if p is not None]
        for n, index in d.carriers.items():
            carriers[index].carries.append(n)
        return carriers + free


_Applicable = list[tuple[int, str, bool]]  # (indicator, its key, failing) of a household


def _applicable_person_indicators(d: _Draft) -> _Applicable:
    return [(n, str(n), bool(d.failed & _bit(n))) for n in CARRIER_AGES if d.applicable & _bit(n)]


def _person_results(person: _Person, applicable: _Applicable) -> dict[str, IndicatorResult]:
    """A member's person-unit results: `fail` for what they carry in a failing household,
    `pass` for every other applicable indicator they are of the ages (or condition) for."""
    results: dict[str, IndicatorResult] = {}
    for n, key, failing in applicable:
        if n in person.carries:
            results[key] = "fail" if failing else "pass"
        elif n == DISABLED_CARE:
            if person.disabled:
                results[key] = "pass"
        elif n == CHRONIC_CARE:
            if person.chronic:
                results[key] = "pass"
        else:
            low, high = CARRIER_AGES[n]
            if low <= person.age <= high:
                results[key] = "pass"
    return results


def _spread_flags(
    rng: random.Random,
    households: list[list[_Person]],
    carriers_of: int,
    count: int,
    flag: Literal["disabled", "chronic"],
) -> None:
    """Sets `flag` on `count` members: the carriers of indicator `carriers_of` first (those it
    is about), then members at random."""
    carriers = [p for people in households for p in people if carriers_of in p.carries]
    rng.shuffle(carriers)
    chosen = carriers[:count]
    if len(chosen) < count:
        chosen_ids = {id(p) for p in chosen}
        rest = [p for people in households for p in people if id(p) not in chosen_ids]
        chosen += rng.sample(rest, min(count - len(chosen), len(rest)))
    for person in chosen:
        setattr(person, flag, True)


# --- villages, IDs and records ---------------------------------------------------------------


def _village_slots(
    rng: random.Random, villages: Sequence[Village], weights: list[int], count: int
) -> list[Village]:
    """`count` villages for households: each village exactly its weight when the weights add up
    to `count` (a full-scale district), else drawn in proportion to them."""
    if count == 0:
        return []
    if sum(weights) == count:
        slots = [v for v, w in zip(villages, weights, strict=True) for _ in range(w)]
        rng.shuffle(slots)
        return slots
    if sum(weights) <= 0:
        weights = [max(v.households, 0) for v in villages]
    if sum(weights) <= 0:
        weights = [1] * len(villages)
    return rng.choices(list(villages), weights=weights, k=count)


def generate_district(
    target: DistrictTarget, villages: Sequence[Village], seed: int | str
) -> DistrictPopulation:
    """The district's households, members and welfare records (see the module docstring)."""
    if not villages:
        msg = f"district {target.code} has no villages to place households in"
        raise ValueError(msg)
    rng = random.Random(f"tpmap-demo:{seed}:{target.code}")  # noqa: S311 (synthetic data, no secrets)
    solver = _Solver(target, rng)
    solver.fail_indicators()
    solver.make_applicable()
    ages = _Ages(solver)
    shortfalls = solver.shortfalls()
    elderly_missing = ages.choose_elderly()
    if elderly_missing:
        shortfalls["elderly", 0, 0] = elderly_missing
    people = [ages.persons(k) for k in range(len(solver.drafts))]
    _spread_flags(rng, people, DISABLED_CARE, target.disabled, "disabled")
    _spread_flags(rng, people, CHRONIC_CARE, target.chronic, "chronic")

    poor = [k for k, d in enumerate(solver.drafts) if d.cell]
    not_poor = [k for k, d in enumerate(solver.drafts) if not d.cell]
    placed: dict[int, Village] = {}
    for indexes, weights in (
        (poor, [v.poor_households for v in villages]),
        (not_poor, [max(v.households - v.poor_households, 0) for v in villages]),
    ):
        placed.update(
            zip(indexes, _village_slots(rng, villages, weights, len(indexes)), strict=True)
        )

    builder = _Records(rng, target.code)
    # Shuffled before the (stable) sort, so house numbers do not follow the deprivation sets.
    order = list(range(len(solver.drafts)))
    rng.shuffle(order)
    households = [
        builder.household(solver.drafts[k], people[k], placed[k])
        for k in sorted(order, key=lambda k: placed[k].code)
    ]
    return DistrictPopulation(target.code, households, shortfalls)


class _Records:
    """Turns decided households into records: IDs, house numbers, dates, income, cards."""

    def __init__(self, rng: random.Random, district: str) -> None:
        self.rng = rng
        # Citizen IDs: 9, the district's 4 digits, a 7-digit serial (synthetic_citizen_id).
        self.serial = int(district) * 10**7
        self.houses: Counter[str] = Counter()

    def household(self, d: _Draft, people: list[_Person], village: Village) -> DemoHousehold:
        rng = self.rng
        self.houses[village.code] += 1
        house = self.houses[village.code]
        moo = int(village.code[6:])
        indicators: dict[str, IndicatorResult] = {
            str(n): "fail" if d.failed & _bit(n) else "pass"
            for n in HOUSEHOLD_UNIT
            if d.applicable & _bit(n)
        }
        income: int | None = None
        if str(INCOME_INDICATOR) in indicators:
            income = (
                rng.randint(INCOME_THRESHOLD // 4, INCOME_THRESHOLD - 1)
                if indicators[str(INCOME_INDICATOR)] == "fail"
                else INCOME_THRESHOLD + int(rng.expovariate(1 / 45_000))
            )
        people = sorted(people, key=lambda p: -p.age)  # the oldest first, as a head of household
        adults = [p for p in people if p.age >= ADULT_AGE]
        holders = rng.sample(adults, min(d.cards, len(adults)))
        cards: dict[int, WelfareStatus] = {
            id(p): "verified" if rank < d.verified else "registered"
            for rank, p in enumerate(holders)
        }
        applicable = _applicable_person_indicators(d)
        members = tuple(self._member(p, cards.get(id(p)), applicable) for p in people)
        return DemoHousehold(
            household_id=f"demo-{village.code}-{house:05d}",
            village_code=village.code,
            house_no=house_no(house, moo, village.name),
            surveyed_on=_SURVEY_START + timedelta(days=rng.randrange(_SURVEY_DAYS)),
            income_per_capita_baht=income,
            happiness_score=round(min(10.0, max(0.0, rng.gauss(8.4, 1.1))), 1),
            indicators=indicators,
            members=members,
        )

    def _member(
        self, p: _Person, card: WelfareStatus | None, applicable: _Applicable
    ) -> DemoMember:
        rng = self.rng
        self.serial += 1
        if card is None and p.age >= ADULT_AGE and rng.random() < _REJECTED_RATE:
            card = "rejected"  # applied and was turned down: an exclusion-error candidate
        died_on = (
            _DEATHS_START + timedelta(days=rng.randrange(365))
            if p.age >= ELDERLY_AGE and rng.random() < _DEATH_RATE_ELDERLY
            else None
        )
        return DemoMember(
            citizen_id=synthetic_citizen_id(self.serial),
            age=p.age,
            sex="F" if rng.random() < 0.5 else "M",
            disabled=p.disabled,
            chronic_patient=p.chronic,
            bedridden=p.disabled and p.age >= ELDERLY_AGE and rng.random() < _BEDRIDDEN_RATE,
            indicators=_person_results(p, applicable),
            welfare=card,
            welfare_updated_at=(
                _REGISTRY_START + timedelta(minutes=rng.randrange(_REGISTRY_DAYS * 24 * 60))
                if card is not None
                else None
            ),
            died_on=died_on,
        )


def house_no(house: int, moo: int, village_name: str | None) -> str:
    """The address line, with the village's name when it fits the survey record's limit (some
    names are longer than the whole line may be)."""
    line = f"{house} หมู่ {moo}"
    named = f"{line} {village_name}" if village_name else line
    return named if len(named) <= HOUSE_NO_MAX_LENGTH else line
