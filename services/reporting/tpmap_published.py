"""TPMAP's own published figures for data year 2561 (`shared/data/tpmap-2561/`, read where the
setting `REPORTING_TPMAP_2561_DIR` says, never copied into this repository), under the
platform's section-4 names, for the dashboard's side-by-side comparison.

TPMAP published every mask for the country, provinces and districts, and only `11111` for
subdistricts and villages; `common` files hold the surveyed population. Its village IDs carry a
two-digit sub-unit suffix: a village's figures are the sum of its sub-units (and its target
rate is then recomputed from the sums). Reading the files is `read_published`; the rest is pure.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.contracts.areas import AreaLevel, level_of
from services.contracts.indicators import DIMENSIONS
from services.reporting.contributions import ALL_DIMENSIONS_MASK, target_rate

PUBLISHED_YEAR = 2561
COMMON = "common"

# TPMAP's column names (TPMAP-RULES.md section 4, in brackets) -> the platform's figure names:
# one count each, per dimension (TPMAP writes `access` as `accessibility`), per indicator.
COLUMN_FIGURES = {
    "household.CNT": "households_surveyed",
    "HOUSEMEMBER_CNT": "persons_surveyed",
    "MOF_REG_CNT": "welfare_registered",
    "MOF_VAL_CNT": "welfare_verified",
    "ELDERLY_CNT": "elderly",
    "DISABLED_CNT": "disabled",
    "CHRONICPATIENT_CNT": "chronic_patients",
    "poor.household.CNT": "poor_households",
    "poor.JPT.CNT": "poor_persons",
    "poor.JPT.MOFreg.CNT": "poor_registered",
    "poor.JPT.MOFval.CNT": "target_persons",
    "JPT.MOFval.pov.rate": "target_rate",
}
DIMENSION_COLUMNS = {
    f"poor.JPT.MOFval.{'accessibility' if d.value == 'access' else d.value}": d.value
    for d in DIMENSIONS
}
INDICATOR_COLUMNS = (
    (re.compile(r"^indicator(\d+)\.ALL$"), "indicator_applicable"),
    (re.compile(r"^indicator(\d+)\.CNT$"), "indicator_failed"),
    (re.compile(r"^poor\.JPT\.MOFval\.ind(\d+)\.CNT$"), "target_by_indicator"),
)


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """Where TPMAP published a level's figures, and the column naming its rows' areas."""

    folder: str
    name: str  # with {pp} (the province) and {kind} (common or a mask)
    id_column: str | None
    every_mask: bool


_FILES: dict[AreaLevel, PublishedFile] = {
    "country": PublishedFile("country", "61_country_{kind}.csv", None, every_mask=True),
    "province": PublishedFile("province", "61_province_{kind}.csv", "province_ID", every_mask=True),
    "district": PublishedFile("amphur", "61_{pp}_amphur_{kind}.csv", "amphur_ID", every_mask=True),
    "subdistrict": PublishedFile(
        "tambol", "61_{pp}_tambol_{kind}.csv", "tumbol_ID", every_mask=False
    ),
    "village": PublishedFile(
        "village", "61_{pp}_village_{kind}.csv", "village_ID", every_mask=False
    ),
}


def published_paths(code: str, mask: str) -> tuple[Path, Path] | None:
    """The `common` and mask files (relative to the data folder) holding an area's row, or None
    when TPMAP did not publish that area level under that mask."""
    level = level_of(code)
    if level is None:
        return None
    published = _FILES[level]
    if mask != ALL_DIMENSIONS_MASK and not published.every_mask:
        return None
    folder = Path(published.folder)
    return (
        folder / published.name.format(pp=code[:2], kind=COMMON),
        folder / published.name.format(pp=code[:2], kind=mask),
    )


def rows_of(rows: Iterable[Mapping[str, str]], code: str) -> list[Mapping[str, str]]:
    """The rows of an area: the one row of the country file, the row with the area's ID, or a
    village's sub-unit rows (IDs of its 8 digits and two more)."""
    level = level_of(code)
    id_column = _FILES[level].id_column if level else None
    if id_column is None:
        return list(rows)
    if level == "village":
        return [r for r in rows if r[id_column][:8] == code and len(r[id_column]) == 10]
    return [r for r in rows if r[id_column] == code]


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def published_figures(rows: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """The figures of an area's rows (of a `common` and a mask file), summed over the rows, under
    the platform's names; with several rows the target rate is recomputed from the sums."""
    rows = list(rows)
    figures: dict[str, Any] = {}
    by_key: dict[str, dict[str, int | float]] = {}

    def add(group: str, key: str, text: str) -> None:
        counts = by_key.setdefault(group, {})
        counts[key] = counts.get(key, 0) + _number(text)

    for row in rows:
        for header, text in row.items():
            if header in COLUMN_FIGURES:
                name = COLUMN_FIGURES[header]
                figures[name] = figures.get(name, 0) + _number(text)
            elif header in DIMENSION_COLUMNS:
                add("target_by_dimension", DIMENSION_COLUMNS[header], text)
            for pattern, group in INDICATOR_COLUMNS:
                if matched := pattern.match(header):
                    add(group, matched[1], text)
    figures.update(by_key)
    if sum("JPT.MOFval.pov.rate" in row for row in rows) > 1:
        figures["target_rate"] = target_rate(
            int(figures.get("target_persons", 0)), int(figures.get("persons_surveyed", 0))
        )
    return figures


@functools.lru_cache(maxsize=64)
def _read_csv(path: Path) -> tuple[dict[str, str], ...]:
    with path.open(encoding="utf-8", newline="") as source:
        return tuple(csv.DictReader(source))


def read_published(folder: Path, code: str, mask: str) -> dict[str, Any] | None:
    """TPMAP's figures of an area under a mask, or None when TPMAP published none (a level or
    mask it left out, an area it did not survey, the folder missing)."""
    paths = published_paths(code, mask)
    if paths is None:
        return None
    common_path, mask_path = (folder / p for p in paths)
    if not (common_path.is_file() and mask_path.is_file()):
        return None
    rows = rows_of(_read_csv(common_path), code) + rows_of(_read_csv(mask_path), code)
    return published_figures(rows) if rows else None
