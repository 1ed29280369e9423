"""TPMAP's CSV export (TPMAP-RULES.md section 4): which file a name asks for, its columns, and its
lines from the areas' figures. Pure: no I/O.

Files are named and laid out like TPMAP's export for data year 2561 (`shared/data/tpmap-2561/`):

| name | rows | first column |
|---|---|---|
| `YY_country_KIND.csv` | the country | none |
| `YY_province_KIND.csv` | every province | `province_ID` |
| `YY_PP_amphur_KIND.csv` | the districts of province `PP` | `amphur_ID` |
| `YY_PP_tambol_KIND.csv` | the subdistricts of province `PP` | `tumbol_ID` (TPMAP's spelling) |
| `YY_PP_village_KIND.csv` | the villages of province `PP` | `village_ID` (8 digits) |

`YY` is the survey year (BE) without its century (`61` for 2561). `KIND` is `common` (the
surveyed population, the same under every mask) or a dimension mask `MMMMM` (health, living,
education, income, access: the poor and target figures when only those dimensions count).
Files of a province end with a `province_ID` column. TPMAP published subdistrict and village
files only for `11111`; the platform answers every mask at every level.

TPMAP wrote its files with R's `write.csv`: every header quoted, text cells quoted, numbers not,
fractions with 15 significant digits. Which ID columns are text follows its files: province and
district codes are numbers, subdistrict, village and the trailing province codes are text. A
figure the platform has no data for (`happiness`: BMN happiness scores are not ingested) is an
empty cell. TPMAP's village IDs have a two-digit sub-unit suffix the platform does not have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.contracts.areas import COUNTRY_CODE, area
from services.contracts.indicators import DIMENSIONS, Dimension
from services.reporting.contributions import ALL_DIMENSIONS_MASK, INDICATOR_COUNT, AreaFigures

Cell = int | float | str | None
"""A value as written: a number, text (quoted) or None (an empty cell)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a file: its header and its cell for an area (code and figures)."""

    header: str
    cell: Callable[[str, AreaFigures], Cell]


@dataclass(frozen=True, slots=True)
class TpmapLevel:
    """A level as TPMAP's file names call it."""

    name: str
    per_province: bool
    """Named `YY_PP_level_KIND.csv`, rows of province `PP`, with a trailing `province_ID`."""
    generations: int
    """Levels from the file's parent area (the country, or the province `PP`) down to its rows."""
    id_column: Column | None


def _code_number(header: str) -> Column:
    return Column(header, lambda code, _: int(code))


def _code_text(header: str) -> Column:
    return Column(header, lambda code, _: code)


_LEVELS: dict[str, TpmapLevel] = {
    level.name: level
    for level in (
        TpmapLevel("country", False, 0, None),
        TpmapLevel("province", False, 1, _code_number("province_ID")),
        TpmapLevel("amphur", True, 1, _code_number("amphur_ID")),
        TpmapLevel("tambol", True, 2, _code_text("tumbol_ID")),
        TpmapLevel("village", True, 3, _code_text("village_ID")),
    )
}
_PROVINCE_COLUMN = Column("province_ID", lambda code, _: code[:2])

_COMMON = "common"
_NAME = re.compile(
    r"(?P<yy>\d{2})_(?:(?P<province>\d{2})_)?(?P<level>[a-z]+)_(?P<kind>common|[01]{5})\.csv"
)
_NAME_FORMS = (
    "YY_country_KIND.csv, YY_province_KIND.csv or YY_PP_LEVEL_KIND.csv "
    "(LEVEL: amphur, tambol or village; KIND: common or a dimension mask such as 11111)"
)


class UnknownExportFileError(ValueError):
    """The name is not a file of TPMAP's export for that survey year; the message says why."""


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file of the export: its year, level, province (per-province files) and mask (None for
    the `common` file)."""

    survey_year: int
    tpmap_level: TpmapLevel
    province: str | None
    mask: str | None

    @property
    def name(self) -> str:
        province = "" if self.province is None else f"{self.province}_"
        kind = _COMMON if self.mask is None else self.mask
        return f"{self.survey_year % 100:02d}_{province}{self.tpmap_level.name}_{kind}.csv"

    @property
    def parent(self) -> str:
        """The area whose descendants at the file's level are its rows."""
        return COUNTRY_CODE if self.province is None else self.province

    @property
    def figures_mask(self) -> str:
        """The mask to compute the figures under (`common` figures do not depend on it)."""
        return ALL_DIMENSIONS_MASK if self.mask is None else self.mask

    @property
    def columns(self) -> tuple[Column, ...]:
        level = self.tpmap_level
        return (
            *(() if level.id_column is None else (level.id_column,)),
            *(COMMON_COLUMNS if self.mask is None else MASK_COLUMNS),
            *((_PROVINCE_COLUMN,) if self.province is not None else ()),
        )


def parse_file_name(survey_year: int, name: str) -> ExportFile:
    """The file `name` asks for in `survey_year`'s export; UnknownExportFileError says which
    part of the name is wrong and why."""
    found = _NAME.fullmatch(name)
    if found is None:
        msg = f"not a TPMAP export file name: {name!r}; expected {_NAME_FORMS}"
        raise UnknownExportFileError(msg)
    yy, province, level_name, kind = found.group("yy", "province", "level", "kind")
    expected_yy = f"{survey_year % 100:02d}"
    if yy != expected_yy:
        msg = f"{name}: files of survey year {survey_year} start with {expected_yy}_, not {yy}_"
        raise UnknownExportFileError(msg)
    level = _LEVELS.get(level_name)
    if level is None:
        msg = f"{name}: unknown level {level_name!r}; TPMAP's levels are {', '.join(_LEVELS)}"
        raise UnknownExportFileError(msg)
    if (province is not None) != level.per_province:
        form = f"YY_PP_{level_name}" if level.per_province else f"YY_{level_name}"
        msg = f"{name}: {level_name} files are named {form}_KIND.csv"
        raise UnknownExportFileError(msg)
    if province is not None and area(province) is None:
        msg = f"{name}: unknown province code {province}"
        raise UnknownExportFileError(msg)
    if kind == "00000":
        msg = f"{name}: mask 00000 selects no dimension (at least one of the five must be 1)"
        raise UnknownExportFileError(msg)
    return ExportFile(survey_year, level, province, None if kind == _COMMON else kind)


# --- columns ----------------------------------------------------------------------------------

_INDICATORS = range(1, INDICATOR_COUNT + 1)
# TPMAP's column names of the dimensions where they differ from the platform's.
_DIMENSION_COLUMN = {Dimension.ACCESS: "accessibility"}


def _figure(header: str, read: Callable[[AreaFigures], Cell]) -> Column:
    return Column(header, lambda _, figures: read(figures))


def _applicable(number: int) -> Column:
    return _figure(f"indicator{number}.ALL", lambda f: f.indicator_applicable.get(number, 0))


def _failed(number: int) -> Column:
    return _figure(f"indicator{number}.CNT", lambda f: f.indicator_failed.get(number, 0))


def _target_in(dimension: Dimension) -> Column:
    header = f"poor.JPT.MOFval.{_DIMENSION_COLUMN.get(dimension, dimension.value)}"
    return _figure(header, lambda f: f.target_by_dimension[dimension.value])


def _target_failing(number: int) -> Column:
    return _figure(f"poor.JPT.MOFval.ind{number}.CNT", lambda f: f.target_by_indicator[number])


COMMON_COLUMNS: tuple[Column, ...] = (
    _figure("household.CNT", lambda f: f.households_surveyed),
    _figure("HOUSEMEMBER_CNT", lambda f: f.persons_surveyed),
    _figure("MOF_REG_CNT", lambda f: f.welfare_registered),
    _figure("MOF_VAL_CNT", lambda f: f.welfare_verified),
    _figure("ELDERLY_CNT", lambda f: f.elderly),
    _figure("DISABLED_CNT", lambda f: f.disabled),
    _figure("CHRONICPATIENT_CNT", lambda f: f.chronic_patients),
    _figure("happiness", lambda _: None),
    *(_applicable(n) for n in _INDICATORS),
    *(_failed(n) for n in _INDICATORS),
)
MASK_COLUMNS: tuple[Column, ...] = (
    _figure("poor.household.CNT", lambda f: f.poor_households),
    _figure("poor.JPT.CNT", lambda f: f.poor_persons),
    _figure("poor.JPT.MOFreg.CNT", lambda f: f.poor_registered),
    _figure("poor.JPT.MOFval.CNT", lambda f: f.target_persons),
    *(_target_in(d) for d in DIMENSIONS),
    _figure("JPT.MOFval.pov.rate", lambda f: f.target_rate),
    *(_target_failing(n) for n in _INDICATORS),
)


# --- lines ------------------------------------------------------------------------------------


def format_cell(cell: Cell) -> str:
    """A cell as R's write.csv writes it (see the module's docstring)."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return '"' + cell.replace('"', '""') + '"'
    if isinstance(cell, float):
        return f"{cell:.15g}"
    return str(cell)


def _line(cells: Iterable[Cell]) -> str:
    return ",".join(format_cell(c) for c in cells) + "\n"


def header_line(export: ExportFile) -> str:
    return _line(c.header for c in export.columns)


def row_line(export: ExportFile, code: str, figures: AreaFigures) -> str:
    """The line of area `code` (at the file's level) with its figures under the file's mask."""
    return _line(c.cell(code, figures) for c in export.columns)
