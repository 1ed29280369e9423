"""The catalogue of Thai agencies an intervention can come from (data/agencies.csv, written for
this project from the agencies' own names). Pure: reads its data file only."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from services.contracts.indicators import Dimension


@dataclass(frozen=True, slots=True)
class Agency:
    code: str
    name_th: str
    name_en: str
    dimensions: tuple[Dimension, ...]  # where it usually helps; a hint, not a rule


@cache
def agencies() -> dict[str, Agency]:
    text = files("services.logbook").joinpath("data/agencies.csv").read_text("utf-8")
    return {
        row["code"]: Agency(
            row["code"],
            row["name_th"],
            row["name_en"],
            tuple(Dimension(d) for d in row["dimensions"].split()),
        )
        for row in csv.DictReader(text.splitlines())
    }
