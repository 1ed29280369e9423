"""Generating the demo for chosen provinces (or the country) at a scale: reads the reference
data, generates district by district, writes as it goes (memory holds one district), reports
progress, and writes the manifest: what was asked, where the data came from, what was made and
what could not be met."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.contracts.areas import area
from tools.demo.calibration import format_mask, scaled
from tools.demo.files import Format, RecordFiles, read_manifest, write_manifest
from tools.demo.population import SURVEY_YEAR, DistrictPopulation, generate_district
from tools.demo.published import (
    GAZETTEER_FILE,
    TPMAP_FOLDER,
    district_codes,
    read_district_target,
    read_gazetteer,
    read_village_units,
    usable_village_code,
)
from tools.demo.villages import village_plan


@dataclass(frozen=True, slots=True)
class Request:
    provinces: tuple[str, ...]
    scale: float
    seed: int
    data_dir: Path
    out: Path
    file_format: Format


@dataclass(slots=True)
class Summary:
    households: int = 0
    persons: int = 0
    seconds: float = 0.0
    records: dict[str, int] = field(default_factory=dict)
    village_codes: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    shortfalls: dict[str, dict[str, int]] = field(default_factory=dict)


def _shortfalls(population: DistrictPopulation) -> dict[str, int]:
    return {
        f"{figure}.{n}" + (f".{format_mask(s)}" if s else ""): gap
        for (figure, n, s), gap in sorted(population.shortfalls.items())
    }


def generate(request: Request, report: Callable[[str], None]) -> Summary:
    """Writes the population of the requested provinces; `report` gets progress lines."""
    started = time.monotonic()
    summary = Summary()
    gazetteer = read_gazetteer(request.data_dir)
    with RecordFiles(request.out, request.file_format) as files:
        for number, province in enumerate(request.provinces, 1):
            name = area(province)
            units = read_village_units(request.data_dir, province)
            codes = district_codes(request.data_dir, province)
            province_started = time.monotonic()
            households = 0
            for district in codes:
                target = scaled(read_district_target(request.data_dir, district), request.scale)
                villages, provenance = village_plan(district, units, gazetteer, usable_village_code)
                population = generate_district(target, villages, request.seed)
                for household in population.households:
                    files.write(household)
                    summary.persons += len(household.members)
                households += len(population.households)
                summary.village_codes.update(provenance)
                summary.notes.extend(target.notes)
                if population.shortfalls:
                    summary.shortfalls[district] = _shortfalls(population)
            summary.households += households
            report(
                f"[{number}/{len(request.provinces)}] province {province} "
                f"{name.name_en if name else ''}: {len(codes)} districts, {households:,} "
                f"households in {time.monotonic() - province_started:.1f} s "
                f"(total {summary.households:,} households, {summary.persons:,} persons)"
            )
        summary.records = dict(files.counts)
    summary.seconds = time.monotonic() - started
    write_manifest(request.out, manifest(request, summary))
    return summary


def manifest(request: Request, summary: Summary) -> dict[str, Any]:
    return {
        "generator": "python -m tools.demo generate",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "survey_year": SURVEY_YEAR,
        "provinces": list(request.provinces),
        "scale": request.scale,
        "seed": request.seed,
        "format": request.file_format,
        "households": summary.households,
        "persons": summary.persons,
        "records": summary.records,
        "seconds": round(summary.seconds, 1),
        "synthetic": (
            "every person is invented: citizen IDs start with 9, which no Thai citizen ID does; "
            "household IDs start with demo-"
        ),
        "sources": {
            "figures": f"TPMAP's 2561 export, {request.data_dir / TPMAP_FOLDER} "
            "(NEWKNP/TPMAP commit d7341f8, once tpmap.in.th/public/data/61/)",
            "villages": f"BMN 2559 village gazetteer, {request.data_dir / GAZETTEER_FILE}; "
            "village units and their households from TPMAP's village files",
            "village_codes": dict(summary.village_codes),
        },
        "notes": summary.notes,
        "shortfalls": summary.shortfalls,
    }


def expand_provinces(values: Iterable[str], every: list[str]) -> tuple[str, ...]:
    """Province codes from arguments like '49', '49,75'; 'all' for every province."""
    chosen: list[str] = []
    for value in values:
        for code in (c.strip() for c in value.split(",")):
            if code == "all":
                chosen.extend(every)
            elif code:
                if code not in every:
                    msg = f"TPMAP published no province {code!r} (Bangkok, 10, was not surveyed)"
                    raise ValueError(msg)
                chosen.append(code)
    return tuple(dict.fromkeys(chosen))


def already_generated(request: Request) -> bool:
    """Whether `request.out` already holds the population `request` asks for (its manifest)."""
    try:
        made = read_manifest(request.out)
    except (FileNotFoundError, ValueError):
        return False
    wanted = (list(request.provinces), request.scale, request.seed, request.file_format)
    return (
        made.get("provinces"),
        made.get("scale"),
        made.get("seed"),
        made.get("format"),
    ) == wanted
