"""The BMN indicator catalogue, TPMAP's five dimensions, and the indicator set of each survey year.

The catalogue is a data file shipped in this package (see data/PROVENANCE.md); everything else
here is derived from it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Literal

Unit = Literal["household", "person"]
MAX_AGE = 130
IndicatorResult = Literal["pass", "fail", "na"]


class Dimension(StrEnum):
    """TPMAP's five dimensions, in the order of the 5-bit mask (health first)."""

    HEALTH = "health"
    LIVING = "living"
    EDUCATION = "education"
    INCOME = "income"
    ACCESS = "access"

    @property
    def label_th(self) -> str:
        return _DIMENSION_LABELS_TH[self]

    @property
    def bit(self) -> int:
        """This dimension's bit in a deprivation-set integer (health = 0b10000)."""
        return 1 << (len(DIMENSIONS) - 1 - DIMENSIONS.index(self))


DIMENSIONS: tuple[Dimension, ...] = tuple(Dimension)

_DIMENSION_LABELS_TH = {
    Dimension.HEALTH: "สุขภาพ",
    Dimension.LIVING: "ความเป็นอยู่",
    Dimension.EDUCATION: "การศึกษา",
    Dimension.INCOME: "รายได้",
    Dimension.ACCESS: "การเข้าถึงบริการรัฐ",
}


def dimensions_to_mask(dimensions: frozenset[Dimension] | set[Dimension]) -> str:
    """Renders a set of dimensions as TPMAP's mask string, e.g. {health, income} -> '10010'."""
    return "".join("1" if d in dimensions else "0" for d in DIMENSIONS)


def mask_to_dimensions(mask: str) -> frozenset[Dimension]:
    """Parses TPMAP's 5-character mask ('11111' = all dimensions)."""
    if len(mask) != len(DIMENSIONS) or set(mask) - {"0", "1"}:
        msg = f"mask must be 5 characters of 0 and 1 (health, living, education, income, access), got {mask!r}"
        raise ValueError(msg)
    return frozenset(d for d, flag in zip(DIMENSIONS, mask, strict=True) if flag == "1")


@dataclass(frozen=True, slots=True)
class Indicator:
    """One survey indicator. `min_age`/`max_age` bound the persons a person-unit result may be given for."""

    number: int
    unit: Unit
    min_age: int | None
    max_age: int | None
    dimension: Dimension | None
    label_th: str
    label_en: str

    def applies_to_age(self, age: int) -> bool:
        return (self.min_age is None or age >= self.min_age) and (
            self.max_age is None or age <= self.max_age
        )

    @property
    def ages(self) -> str:
        """The age range as the catalogue writes it: '6-14', '60-' (60 and over), '' (any age)."""
        if self.min_age is None and self.max_age is None:
            return ""
        if self.min_age == self.max_age:
            return str(self.min_age)
        return f"{self.min_age if self.min_age is not None else ''}-{self.max_age if self.max_age is not None else ''}"


def _parse_ages(text: str) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    if "-" not in text:
        return int(text), int(text)
    low, high = text.split("-", 1)
    return (int(low) if low else None), (int(high) if high else None)


@dataclass(frozen=True, slots=True)
class IndicatorSet:
    """The indicators and the income threshold in force for a range of survey years (BE)."""

    name: str
    first_year: int
    last_year: int
    income_threshold_baht: int
    indicators: tuple[Indicator, ...]
    # Indicators by their key in a record's `indicators` ("1".."31"): validation's hot path.
    by_key: dict[str, Indicator] = field(init=False, repr=False, compare=False)

    household_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _person_keys_by_age: tuple[frozenset[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {str(i.number): i for i in self.indicators})
        object.__setattr__(
            self,
            "household_keys",
            frozenset(str(i.number) for i in self.indicators if i.unit == "household"),
        )
        person_keys_by_age = tuple(
            frozenset(
                str(i.number)
                for i in self.indicators
                if i.unit == "person" and i.applies_to_age(age)
            )
            for age in range(MAX_AGE + 1)
        )
        object.__setattr__(self, "_person_keys_by_age", person_keys_by_age)

    def person_keys_for_age(self, age: int) -> frozenset[str]:
        """Keys of the person-unit indicators that apply to a person of this age."""
        return self._person_keys_by_age[age] if 0 <= age <= MAX_AGE else frozenset()

    def get(self, number: int) -> Indicator | None:
        if 1 <= number <= len(self.indicators):
            return self.indicators[number - 1]
        return None

    def by_dimension(self, dimension: Dimension) -> tuple[Indicator, ...]:
        return tuple(i for i in self.indicators if i.dimension is dimension)


# Indicator 22 is income: its result follows from income_per_capita_baht when the record has one.
INCOME_INDICATOR = 22


@cache
def _catalogue_2560() -> tuple[Indicator, ...]:
    text = files("services.contracts").joinpath("data/bmn-indicators-2560.csv").read_text("utf-8")
    indicators = []
    for row in csv.DictReader(text.splitlines()):
        min_age, max_age = _parse_ages(row["ages"])
        indicators.append(
            Indicator(
                number=int(row["indicator"]),
                unit="person" if row["unit"] == "person" else "household",
                min_age=min_age,
                max_age=max_age,
                dimension=Dimension(row["tpmap_dimension"]) if row["tpmap_dimension"] else None,
                label_th=row["label_th"],
                label_en=row["label_en"],
            )
        )
    return tuple(indicators)


@cache
def indicator_sets() -> tuple[IndicatorSet, ...]:
    """Every indicator set the platform supports, oldest first."""
    return (
        IndicatorSet(
            name="BMN 2560",
            first_year=2560,
            last_year=2565,
            income_threshold_baht=38_000,
            indicators=_catalogue_2560(),
        ),
    )


def indicator_set_for(survey_year: int) -> IndicatorSet | None:
    """The indicator set of a survey year (BE), or None when the year is not supported."""
    for indicator_set in indicator_sets():
        if indicator_set.first_year <= survey_year <= indicator_set.last_year:
            return indicator_set
    return None


def supported_years() -> range:
    sets = indicator_sets()
    return range(sets[0].first_year, sets[-1].last_year + 1)
