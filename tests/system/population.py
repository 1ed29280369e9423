"""The population every system test loads: the demo generator's synthetic households of one
small province (`python -m tools.demo generate`, calibrated to TPMAP 2561, shrunk with `--scale`),
plus later records that change it (re-surveys, newer welfare registrations, deaths in the survey
year) and the field work done on some of its cases through the logbook's API.

Everything here is deterministic: every run of every scenario loads the same records and does
the same field work, so their aggregates must come out identical. No real person: the demo's
citizen IDs start with 9, which no Thai citizen ID does.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from services.contracts.indicators import DIMENSIONS, Dimension
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration, parse_record
from services.logbook.agencies import agencies
from services.matcher.rules import assess_household
from tests.unit.matcher.reference import batch_evaluation

REPO = Path(__file__).parents[2]
PROVINCE = "49"  # Mukdahan, where the project's other synthetic data lives too
SCALE = 0.025  # about 2,200 households, 6,100 persons
SEED = 2561
SURVEY_YEAR = 2561
# Household-unit BMN indicators outside TPMAP's 17: a re-survey flips one of them, which changes
# the per-indicator figures but not the household's deprivation set (so not its case either).
NON_TPMAP_HOUSEHOLD_INDICATORS = ("12", "13", "14", "23", "30", "31")
FIELD_WORK_HOUSEHOLDS = 24

Source = Literal["bmn", "welfare", "civil"]
WorkKind = Literal["helped", "in_progress", "self_resolved", "visited"]


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one source, sent in one request (NDJSON lines, without the newline)."""

    source: Source
    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class FieldWork:
    """What a field team records on one household's case."""

    household_id: str
    kind: WorkKind
    deprivation: tuple[Dimension, ...]  # the household's, in TPMAP's order


@dataclass(frozen=True, slots=True, repr=False)
class Population:
    welfare: tuple[bytes, ...]
    civil: tuple[bytes, ...]  # the demo's deaths and the extra deaths in the survey year
    surveys: tuple[bytes, ...]
    resurveys: tuple[bytes, ...]  # newer records of some households
    welfare_updates: tuple[bytes, ...]  # newer registrations of some persons
    field_work: tuple[FieldWork, ...]
    expected_persons: dict[tuple[str, int], tuple[Any, ...]]
    expected_households: dict[tuple[str, int], tuple[Any, ...]]

    def __repr__(self) -> str:  # pytest shows arguments of a failed test: no citizen ID in it
        return (
            f"Population({len(self.surveys)} surveys, {len(self.welfare)} registrations, "
            f"{len(self.civil)} deaths, {len(self.resurveys)} re-surveys, "
            f"{len(self.welfare_updates)} newer registrations, field work on "
            f"{len(self.field_work)} cases)"
        )

    def share_of_surveys_up_to(self, household_id: str) -> float:
        """Which share of the survey file comes before this household, itself included."""
        needle = f'"household_id":"{household_id}"'.encode()
        at = next(n for n, line in enumerate(self.surveys) if needle in line)
        return (at + 1) / len(self.surveys)

    def facts(self, per_request: int) -> list[Batch]:
        """Phase 1 of the usual order: the registry's facts before any survey."""
        return [*batches("welfare", self.welfare, per_request), *batches("civil", self.civil, 500)]

    def survey_batches(self, per_request: int) -> list[Batch]:
        """Phase 2: the surveys."""
        return batches("bmn", self.surveys, per_request)

    def updates(self, per_request: int) -> list[Batch]:
        """Phase 3: what changed since (re-surveys, newer registrations)."""
        return [
            *batches("bmn", self.resurveys, per_request),
            *batches("welfare", self.welfare_updates, per_request),
        ]

    def all_records(self) -> list[Any]:
        """Every record, parsed, for the matcher's rules in one batch."""
        models: list[tuple[type[Any], tuple[bytes, ...]]] = [
            (WelfareRegistration, self.welfare + self.welfare_updates),
            (CivilEvent, self.civil),
            (BmnHousehold, self.surveys + self.resurveys),
        ]
        return [parse_record(model, line) for model, lines in models for line in lines]


def batches(source: Source, records: tuple[bytes, ...], per_request: int) -> list[Batch]:
    return [
        Batch(source, records[i : i + per_request]) for i in range(0, len(records), per_request)
    ]


def generate_demo(out: Path) -> Path:
    """The demo generator's files for the province, written once into `out`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.demo",
            "generate",
            "--provinces",
            PROVINCE,
            "--scale",
            str(SCALE),
            "--seed",
            str(SEED),
            "--out",
            str(out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out


def _lines(path: Path) -> list[bytes]:
    return [line.rstrip(b"\n") for line in path.read_bytes().splitlines() if line.strip()]


def _dump(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def _resurvey(household: dict[str, Any]) -> dict[str, Any]:
    """The household surveyed again a month later with one non-TPMAP indicator changed."""
    later = date.fromisoformat(household["surveyed_on"]) + timedelta(days=30)
    indicators = dict(household["indicators"])
    flipped = next(
        (n for n in NON_TPMAP_HOUSEHOLD_INDICATORS if indicators.get(n) in ("pass", "fail")),
        NON_TPMAP_HOUSEHOLD_INDICATORS[0],
    )
    indicators[flipped] = "pass" if indicators.get(flipped) == "fail" else "fail"
    return {**household, "surveyed_on": later.isoformat(), "indicators": indicators}


def build(demo: Path) -> Population:
    """The population from the demo's files: every 40th household re-surveyed, every 8th
    `registered` person verified a month later, every 150th person dead in the survey year."""
    surveys = _lines(demo / "bmn.ndjson")
    welfare = _lines(demo / "welfare.ndjson")
    civil = _lines(demo / "civil.ndjson")
    households = [orjson.loads(line) for line in surveys]

    resurveys = [_dump(_resurvey(h)) for h in households[7::40]]
    updates = []
    for n, line in enumerate(welfare):
        registration = orjson.loads(line)
        if registration["status"] == "registered" and n % 8 == 0:
            later = registration["updated_at"].replace("2017-", "2018-", 1)
            updates.append(_dump({**registration, "status": "verified", "updated_at": later}))
    already_dead = {orjson.loads(line)["citizen_id"] for line in civil}
    members = [m["citizen_id"] for h in households for m in h["members"]]
    deaths = [
        _dump({"citizen_id": cid, "event": "death", "date": "2018-01-15"})
        for cid in members[75::150]
        if cid not in already_dead
    ]
    population = Population(
        welfare=tuple(welfare),
        civil=tuple(civil + deaths),
        surveys=tuple(surveys),
        resurveys=tuple(resurveys),
        welfare_updates=tuple(updates),
        field_work=(),
        expected_persons={},
        expected_households={},
    )
    persons, outcomes = batch_evaluation(population.all_records())
    # Field work on households that are target once the surveys are in, before the updates
    # (the updates only verify registrations, so they stay target), spread over the file so
    # their cases open one after another while the surveys are matched.
    before_updates, _ = batch_evaluation(
        [
            parse_record(model, line)
            for model, lines in (
                (WelfareRegistration, population.welfare),
                (CivilEvent, population.civil),
                (BmnHousehold, population.surveys),
            )
            for line in lines
        ]
    )
    target_before = {hh for (_, _), (hh, *_rest) in _target_persons(before_updates)}
    chosen = [h for h in households if h["household_id"] in target_before]
    step = max(len(chosen) // FIELD_WORK_HOUSEHOLDS, 1)
    kinds: tuple[WorkKind, ...] = ("helped", "in_progress", "self_resolved", "visited")
    work = []
    for n, household in enumerate(chosen[::step][:FIELD_WORK_HOUSEHOLDS]):
        deprivation = assess_household(parse_record(BmnHousehold, household)).deprivation
        ordered = tuple(d for d in DIMENSIONS if d in deprivation)
        work.append(FieldWork(household["household_id"], kinds[n % len(kinds)], ordered))
    return Population(
        welfare=population.welfare,
        civil=population.civil,
        surveys=population.surveys,
        resurveys=population.resurveys,
        welfare_updates=population.welfare_updates,
        field_work=tuple(work),
        expected_persons=persons,
        expected_households=outcomes,
    )


def _target_persons(
    persons: dict[tuple[str, int], tuple[Any, ...]],
) -> list[tuple[tuple[str, int], tuple[Any, ...]]]:
    return [(key, value) for key, value in persons.items() if value[2] == "target"]


def agency_for(dimension: Dimension) -> str:
    """The first agency of the catalogue that usually helps in the dimension."""
    return next(a.code for a in agencies().values() if dimension in a.dimensions)
