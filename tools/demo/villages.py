"""Which real villages a district's demo households live in, and how many in each.

Pure: no I/O. TPMAP's 2561 village files say how many households and poor households each
village unit had; the BMN 2559 gazetteer gives real village codes and names. A unit's 8-digit
code is used as it is when the gazetteer has it; otherwise its households move to a gazetteer
village of the same subdistrict (or else district), and only where the gazetteer has none there
(Bueng Kan, province 38, is filed under its pre-2011 province in the 2559 gazetteer) does the
TPMAP code stay, without a name. Codes the contract refuses are never used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# Where a village code came from, for the provenance summary.
FROM_GAZETTEER = "TPMAP village in the gazetteer"
MOVED_IN_SUBDISTRICT = (
    "TPMAP village not in the gazetteer, moved to a gazetteer village of its subdistrict"
)
MOVED_IN_DISTRICT = (
    "TPMAP village not in the gazetteer, moved to a gazetteer village of its district"
)
TPMAP_CODE_ONLY = "TPMAP village code kept (no gazetteer village in its district), no name"
MOVED_TO_TPMAP_VILLAGE = (
    "TPMAP village code refused by the contract, moved to another of its district"
)


@dataclass(frozen=True, slots=True)
class VillageUnit:
    """One row of TPMAP's village files (several rows may share an 8-digit code)."""

    code: str  # the 8-digit village code (TPMAP's ID without its 2-digit sub-unit suffix)
    households: int
    poor_households: int


@dataclass(frozen=True, slots=True)
class Village:
    code: str
    name: str | None
    households: int
    poor_households: int


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """The gazetteer's villages the contract accepts, by code and grouped by area prefix."""

    names: Mapping[str, str]
    by_prefix: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, names: Mapping[str, str], usable: Callable[[str], bool]) -> Gazetteer:
        kept = {code: name for code, name in names.items() if usable(code)}
        grouped: dict[str, list[str]] = {}
        for code in sorted(kept):
            grouped.setdefault(code[:6], []).append(code)
            grouped.setdefault(code[:4], []).append(code)
        return cls(kept, {prefix: tuple(codes) for prefix, codes in grouped.items()})

    def near(self, code: str) -> tuple[str, str] | None:
        """A gazetteer village close to `code` (same subdistrict, else district), the same one
        every time, with how it was found."""
        for prefix, how in ((code[:6], MOVED_IN_SUBDISTRICT), (code[:4], MOVED_IN_DISTRICT)):
            candidates = self.by_prefix.get(prefix)
            if candidates:
                return candidates[int(code[6:]) % len(candidates)], how
        return None


def village_plan(
    district: str,
    units: Iterable[VillageUnit],
    gazetteer: Gazetteer,
    usable: Callable[[str], bool],
) -> tuple[list[Village], Counter[str]]:
    """The district's villages with their TPMAP household counts, and how many units each
    provenance kind accounts for."""
    units = [u for u in units if u.code[:4] == district]
    usable_codes = sorted({u.code for u in units if usable(u.code)})
    households: Counter[str] = Counter()
    poor: Counter[str] = Counter()
    provenance: Counter[str] = Counter()
    for unit in units:
        code, how = _placed(unit.code, gazetteer, usable, usable_codes)
        households[code] += unit.households
        poor[code] += unit.poor_households
        provenance[how] += 1
    villages = [
        Village(code, gazetteer.names.get(code), households[code], poor[code])
        for code in sorted(households)
    ]
    return villages, provenance


def _placed(
    code: str, gazetteer: Gazetteer, usable: Callable[[str], bool], usable_codes: list[str]
) -> tuple[str, str]:
    if code in gazetteer.names:
        return code, FROM_GAZETTEER
    near = gazetteer.near(code)
    if near is not None:
        return near
    if usable(code):
        return code, TPMAP_CODE_ONLY
    if usable_codes:
        return usable_codes[int(code[6:]) % len(usable_codes)], MOVED_TO_TPMAP_VILLAGE
    msg = f"district {code[:4]} has no village code the contract accepts"
    raise ValueError(msg)
