"""Reading the reference data the demo is calibrated on: TPMAP's 2561 export and the BMN 2559
village gazetteer, from `shared/data/` next to the checkout when it is there, else from the
subset for provinces 49 and 75 kept in `data/reference-2561/` (its README gives the
provenance). The figures are read with the reporting
service's reader, so both agree on what every column means.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from services.contracts.areas import village_code_problem
from services.reporting.tpmap_published import COLUMN_FIGURES, published_paths, read_published
from tools.demo.calibration import MASKS, DistrictTarget, district_target
from tools.demo.villages import Gazetteer, VillageUnit

# tools/demo/published.py -> the repository; the reference data lies next to it.
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
TPMAP_FOLDER = "tpmap-2561"
DEFAULT_DATA_DIR = (
    SHARED_DATA_DIR
    if (SHARED_DATA_DIR / TPMAP_FOLDER).is_dir()
    else REPO_ROOT / "data" / "reference-2561"
)
GAZETTEER_FILE = "bmn-2559-villages.csv"
_GAZETTEER_CODE, _GAZETTEER_NAME = "village_ID", "village_name"

_COLUMN_OF = {figure: column for column, figure in COLUMN_FIGURES.items()}
_ALL_DIMENSIONS = MASKS[-1]


class MissingDataError(FileNotFoundError):
    """The reference data is not where it was looked for."""


def tpmap_dir(data_dir: Path) -> Path:
    folder = data_dir / TPMAP_FOLDER
    if not folder.is_dir():
        msg = f"TPMAP's 2561 export not found at {folder} (give --data-dir, the shared/data folder)"
        raise MissingDataError(msg)
    return folder


def _rows(path: Path) -> Iterator[list[str]]:
    """The data rows of a TPMAP file; every file's first column is its area ID."""
    with path.open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        next(reader, None)
        yield from reader


def province_codes(data_dir: Path) -> list[str]:
    """Every province TPMAP published (76: Bangkok was not surveyed)."""
    common, _ = _paths("10")
    return sorted(row[0] for row in _rows(tpmap_dir(data_dir) / common))


def district_codes(data_dir: Path, province: str) -> list[str]:
    common, _ = _paths(f"{province}01")
    path = tpmap_dir(data_dir) / common
    if not path.is_file():
        msg = f"TPMAP published no districts of province {province} ({path} missing)"
        raise MissingDataError(msg)
    return sorted(row[0] for row in _rows(path))


def _paths(code: str) -> tuple[Path, Path]:
    paths = published_paths(code, _ALL_DIMENSIONS)
    if paths is None:  # pragma: no cover - every area level is published under 11111
        msg = f"no TPMAP file for area {code}"
        raise ValueError(msg)
    return paths


def read_district_target(data_dir: Path, code: str) -> DistrictTarget:
    folder = tpmap_dir(data_dir)
    published = {}
    for mask in MASKS:
        figures = read_published(folder, code, mask)
        if figures is None:
            msg = f"TPMAP published no figures for district {code} under mask {mask}"
            raise MissingDataError(msg)
        published[mask] = figures
    return district_target(code, published)


def read_village_units(data_dir: Path, province: str) -> list[VillageUnit]:
    """TPMAP's village units of a province: 8-digit code, households, poor households."""
    common, all_dimensions = (tpmap_dir(data_dir) / p for p in _paths(f"{province}010101"))
    households = _column(common, _COLUMN_OF["households_surveyed"])
    poor = _column(all_dimensions, _COLUMN_OF["poor_households"])
    return [
        VillageUnit(unit[:8], count, poor.get(unit, 0))
        for unit, count in households.items()
        if len(unit) >= 8
    ]


def _column(path: Path, column: str) -> dict[str, int]:
    with path.open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        index = header.index(column)
        return {row[0]: int(row[index]) for row in reader}


def read_gazetteer(data_dir: Path) -> Gazetteer:
    """The gazetteer's villages whose codes the contract accepts."""
    path = data_dir / GAZETTEER_FILE
    if not path.is_file():
        msg = f"village gazetteer not found at {path} (give --data-dir, the shared/data folder)"
        raise MissingDataError(msg)
    with path.open(encoding="utf-8", newline="") as source:
        names = {row[_GAZETTEER_CODE]: row[_GAZETTEER_NAME] for row in csv.DictReader(source)}
    return Gazetteer.of(names, usable_village_code)


def usable_village_code(code: str) -> bool:
    return village_code_problem(code) is None
