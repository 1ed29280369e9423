"""TPMAP's CSV export (services/reporting/export.py) against TPMAP's own files.

The reference is TPMAP's public aggregate export for data year 2561, read at test time from
`shared/data/tpmap-2561/` next to this repository (mirrored from the public repository
NEWKNP/TPMAP at commit d7341f8, originally tpmap.in.th/public/data/61/; see
shared/data/README.md). Nothing of it is copied into this repository.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from services.contracts.indicators import DIMENSIONS
from services.reporting.contributions import AreaFigures, figures
from services.reporting.export import (
    UnknownExportFileError,
    header_line,
    parse_file_name,
    row_line,
)

TPMAP_2561 = Path(__file__).parents[3].parent / "shared" / "data" / "tpmap-2561"
FILES = sorted(TPMAP_2561.glob("*/*.csv"))

needs_tpmap_files = pytest.mark.skipif(not FILES, reason=f"TPMAP's files not in {TPMAP_2561}")

# Section 4 of TPMAP-RULES.md: TPMAP's column name -> the platform's figure, for the columns
# with one count each; per indicator: `_SERIES`; per dimension: `_DIMENSION`; and the rate.
_SINGLE = {
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
}
_SERIES = (
    (re.compile(r"indicator(\d+)\.ALL"), "indicator_applicable"),
    (re.compile(r"indicator(\d+)\.CNT"), "indicator_failed"),
    (re.compile(r"poor\.JPT\.MOFval\.ind(\d+)\.CNT"), "target_by_indicator"),
)
_DIMENSION = re.compile(r"poor\.JPT\.MOFval\.([a-z]+)")


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as file:
        return file.readline()


def _figures_of_tpmap_row(row: dict[str, str]) -> AreaFigures:
    """The platform's figures holding the numbers of one of TPMAP's rows (written from section
    4, independently of export.py)."""
    update: dict[str, object] = {}
    series: dict[str, dict[int, int]] = {field: {} for _, field in _SERIES}
    by_dimension = {d.value: 0 for d in DIMENSIONS}
    for column, text in row.items():
        if column == "JPT.MOFval.pov.rate":
            update["target_rate"] = float(text)
        elif column in _SINGLE:
            update[_SINGLE[column]] = int(text)
        elif found := _DIMENSION.fullmatch(column):
            by_dimension[found.group(1).replace("accessibility", "access")] = int(text)
        for pattern, field in _SERIES:
            if found := pattern.fullmatch(column):
                series[field][int(found.group(1))] = int(text)
    return figures({}).model_copy(
        update={
            **update,
            **{f: s for f, s in series.items() if s},
            "target_by_dimension": by_dimension,
        }
    )


@needs_tpmap_files
def test_every_file_of_tpmap_gives_its_real_header() -> None:
    """Byte for byte, quoting and column order included, at every level, for common and masks."""
    assert len(FILES) == 32 + 32 + 2432 + 152 + 152
    for path in FILES:
        export = parse_file_name(2561, path.name)
        assert export.name == path.name
        assert header_line(export) == _first_line(path), path.name


@needs_tpmap_files
@pytest.mark.parametrize(
    "name",
    [
        "country/61_country_common.csv",
        "country/61_country_11111.csv",
        "country/61_country_10000.csv",
        "province/61_province_common.csv",
        "province/61_province_01000.csv",
        "amphur/61_49_amphur_common.csv",
        "amphur/61_49_amphur_00110.csv",
        "amphur/61_11_amphur_11111.csv",
        "tambol/61_49_tambol_common.csv",
        "tambol/61_49_tambol_11111.csv",
    ],
)
def test_figures_equal_to_tpmaps_give_tpmaps_lines(name: str) -> None:
    """Every line of the file, written from the platform's figures holding TPMAP's numbers,
    equals TPMAP's line (numbers, fractions, quoting), but for `happiness`: the platform has no
    happiness scores, so that cell is empty."""
    path = TPMAP_2561 / name
    export = parse_file_name(2561, path.name)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[1:]
    rows = list(csv.DictReader([_first_line(path), *lines]))
    assert rows
    for line, row in zip(lines, rows, strict=True):
        first_column = next(iter(row))  # the area's code, but in the country's files
        code = row[first_column] if first_column.endswith("_ID") else "TH"
        expected = [
            "" if column == "happiness" else cell
            for column, cell in zip(row, line.rstrip("\n").split(","), strict=True)
        ]
        written = row_line(export, code, _figures_of_tpmap_row(row))
        assert written == ",".join(expected) + "\n", (name, code)


@pytest.mark.parametrize(
    ("year", "name", "level", "parent", "mask"),
    [
        (2561, "61_country_common.csv", "country", "TH", None),
        (2561, "61_province_10101.csv", "province", "TH", "10101"),
        (2561, "61_49_amphur_common.csv", "amphur", "49", None),
        (2561, "61_49_tambol_01000.csv", "tambol", "49", "01000"),
        (2562, "62_10_village_11111.csv", "village", "10", "11111"),
    ],
)
def test_a_file_name_gives_level_parent_and_mask(
    year: int, name: str, level: str, parent: str, mask: str | None
) -> None:
    export = parse_file_name(year, name)
    assert (export.tpmap_level.name, export.parent, export.mask) == (level, parent, mask)
    assert export.name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("61_province_11111.txt", "not a TPMAP export file name"),
        ("61_49_amphur_2.csv", "not a TPMAP export file name"),
        ("62_province_11111.csv", "start with 61_, not 62_"),
        ("61_49_district_common.csv", "unknown level 'district'"),
        ("61_amphur_common.csv", "amphur files are named YY_PP_amphur_KIND.csv"),
        ("61_49_province_common.csv", "province files are named YY_province_KIND.csv"),
        ("61_99_village_common.csv", "unknown province code 99"),
        ("61_country_00000.csv", "mask 00000 selects no dimension"),
    ],
)
def test_a_wrong_file_name_says_what_is_wrong(name: str, reason: str) -> None:
    with pytest.raises(UnknownExportFileError, match=re.escape(reason)):
        parse_file_name(2561, name)


def test_village_rows_carry_the_8_digit_code_and_leave_unknown_figures_empty() -> None:
    counted = figures({}).model_copy(
        update={
            "households_surveyed": 3,
            "persons_surveyed": 7,
            "poor_persons": 2,
            "target_persons": 1,
            "target_by_dimension": {d.value: int(d.value == "access") for d in DIMENSIONS},
            "target_rate": 100 / 7,
        }
    )
    common = parse_file_name(2561, "61_49_village_common.csv")
    masked = parse_file_name(2561, "61_49_village_00001.csv")
    common_line = row_line(common, "49010101", counted)
    assert common_line.startswith('"49010101",3,7,0,0,0,0,0,,0,')  # happiness: no data, empty
    assert common_line.endswith(',"49"\n')
    row = next(csv.DictReader([header_line(masked), row_line(masked, "49010101", counted)]))
    assert (row["village_ID"], row["province_ID"]) == ("49010101", "49")
    assert (row["poor.JPT.CNT"], row["poor.JPT.MOFval.CNT"]) == ("2", "1")
    assert (row["poor.JPT.MOFval.accessibility"], row["poor.JPT.MOFval.health"]) == ("1", "0")
    assert row["JPT.MOFval.pov.rate"] == "14.2857142857143"  # R's 15 significant digits
    assert row["poor.JPT.MOFval.ind31.CNT"] == "0"
