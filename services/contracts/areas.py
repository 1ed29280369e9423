"""Area codes at the five levels (country TH, province PP, district PPDD, subdistrict PPDDSS,
village PPDDSSVV), their parent chains and their Thai and English names.

Province, district and subdistrict names come from `geothai` (DOPA codes, CC BY 4.0). BMN also
surveys CDD municipal units, whose subdistrict digits are 51 or more and which DOPA does not list:
they are valid inside a known district and get a descriptive name. Village names come from the
BMN 2559 gazetteer shipped in data/ (see data/PROVENANCE.md).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

import geothai

AreaLevel = Literal["country", "province", "district", "subdistrict", "village"]

COUNTRY_CODE = "TH"
# CDD numbers its municipal (urban) survey units 51-99 inside a district's subdistrict digits.
FIRST_MUNICIPAL_UNIT = 51

_LEVEL_BY_LENGTH: dict[int, AreaLevel] = {
    2: "province",
    4: "district",
    6: "subdistrict",
    8: "village",
}
_PREFIX_LENGTHS = (2, 4, 6, 8)


@dataclass(frozen=True, slots=True)
class Area:
    code: str
    level: AreaLevel
    name_th: str
    name_en: str
    parent: str | None


def level_of(code: str) -> AreaLevel | None:
    """The level a code's shape implies (without checking the code exists)."""
    if code == COUNTRY_CODE:
        return "country"
    if not (code.isascii() and code.isdigit()):
        return None
    return _LEVEL_BY_LENGTH.get(len(code))


def parent_chain(code: str) -> tuple[str, ...]:
    """The codes from the country down to `code` itself: ('TH', '49', '4901', '490101', '49010101')."""
    if level_of(code) is None:
        msg = f"not an area code: {code!r}"
        raise ValueError(msg)
    if code == COUNTRY_CODE:
        return (COUNTRY_CODE,)
    return (COUNTRY_CODE, *(code[:n] for n in _PREFIX_LENGTHS if n <= len(code)))


def is_municipal_unit(subdistrict_code: str) -> bool:
    return int(subdistrict_code[4:6]) >= FIRST_MUNICIPAL_UNIT


@cache
def _village_names() -> dict[str, str]:
    text = files("services.contracts").joinpath("data/bmn-2559-villages.csv").read_text("utf-8")
    return {row["village_ID"]: row["village_name"] for row in csv.DictReader(text.splitlines())}


@cache
def _gazetteer_villages_by_subdistrict() -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = {}
    for code in sorted(_village_names()):
        grouped.setdefault(code[:6], []).append(code)
    return {subdistrict: tuple(codes) for subdistrict, codes in grouped.items()}


def village_code_problem(code: str) -> str | None:
    """Why `code` is not a usable village code, or None: 8 digits whose province, district and
    subdistrict prefixes are known (a subdistrict may be a CDD municipal unit)."""
    if len(code) != 8 or not (code.isascii() and code.isdigit()):
        return "must be 8 digits PPDDSSVV (province, district, subdistrict, village)"
    if geothai.province(code[:2]) is None:
        return f"unknown province {code[:2]} (prefix of {code})"
    if geothai.district(code[:4]) is None:
        return f"unknown district {code[:4]} in province {code[:2]}"
    if not is_municipal_unit(code[:6]) and geothai.subdistrict(code[:6]) is None:
        return f"unknown subdistrict {code[:6]} in district {code[:4]}"
    if code[6:] == "00":
        return "village number 00 does not exist; villages are numbered from 01"
    return None


def area(code: str) -> Area | None:
    """The area with this code and its names, or None when the code is unknown."""
    level = level_of(code)
    if level is None:
        return None
    return _AREA_BY_LEVEL[level](code)


def _country_area(code: str) -> Area:
    return Area(code, "country", "ประเทศไทย", "Thailand", None)


def _province_area(code: str) -> Area | None:
    province = geothai.province(code)
    if province is None:
        return None
    return Area(code, "province", province.name_th, province.name_en, COUNTRY_CODE)


def _district_area(code: str) -> Area | None:
    district = geothai.district(code)
    if district is None:
        return None
    return Area(code, "district", district.name_th, district.name_en, code[:2])


def _village_area(code: str) -> Area | None:
    if village_code_problem(code) is not None:
        return None
    number = int(code[6:])
    name_th = _village_names().get(code, f"หมู่ที่ {number}")
    return Area(code, "village", name_th, f"Moo {number}", code[:6])


def _subdistrict_area(code: str) -> Area | None:
    if is_municipal_unit(code):
        district = geothai.district(code[:4])
        if district is None:
            return None
        unit = int(code[4:6])
        return Area(
            code,
            "subdistrict",
            f"เขตเทศบาล หน่วย {unit} อ.{district.name_th}",
            f"Municipal unit {unit}, {district.name_en}",
            code[:4],
        )
    subdistrict = geothai.subdistrict(code)
    if subdistrict is None:
        return None
    return Area(code, "subdistrict", subdistrict.name_th, subdistrict.name_en, code[:4])


_AREA_BY_LEVEL: dict[AreaLevel, Callable[[str], Area | None]] = {
    "country": _country_area,
    "province": _province_area,
    "district": _district_area,
    "subdistrict": _subdistrict_area,
    "village": _village_area,
}


def provinces() -> tuple[Area, ...]:
    """Every province geothai knows, sorted by code."""
    return tuple(
        Area(p.code, "province", p.name_th, p.name_en, COUNTRY_CODE) for p in geothai.provinces()
    )


def children(code: str) -> tuple[Area, ...]:
    """The known child areas of an area: provinces of TH, districts of a province, subdistricts of a
    district (DOPA ones from geothai, plus municipal units that have gazetteer villages), villages of
    a subdistrict (from the gazetteer)."""
    level = level_of(code)
    if level == "country":
        return provinces()
    if level == "province":
        return tuple(
            Area(d.code, "district", d.name_th, d.name_en, code) for d in geothai.districts(code)
        )
    if level == "district":
        dopa = {s.code for s in geothai.subdistricts(code)}
        municipal = {
            s
            for s in _gazetteer_villages_by_subdistrict()
            if s.startswith(code) and is_municipal_unit(s)
        }
        found = (area(c) for c in sorted(dopa | municipal))
        return tuple(a for a in found if a is not None)
    if level == "subdistrict":
        found = (area(v) for v in _gazetteer_villages_by_subdistrict().get(code, ()))
        return tuple(a for a in found if a is not None)
    return ()
