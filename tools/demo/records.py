"""Demo households as the records agencies send to ingest: BMN households (CDD), welfare
registrations (MOF) and civil-registry deaths (DOPA), as JSON objects and as CSV rows in the
layouts of `services/ingest/sources.py` (see `docs/examples/`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from services.ingest.sources import BMN, CIVIL, WELFARE, Source
from tools.demo.population import SURVEY_YEAR, WELFARE_ROUND, DemoHousehold, DemoMember

SOURCES: tuple[Source, ...] = (BMN, WELFARE, CIVIL)


def _by_number(indicators: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(indicators.items(), key=lambda item: int(item[0])))


def _member(member: DemoMember) -> dict[str, Any]:
    record: dict[str, Any] = {
        "citizen_id": member.citizen_id,
        "age": member.age,
        "sex": member.sex,
    }
    # The contract's flags default to false: only those that hold are written.
    for flag in ("disabled", "chronic_patient", "bedridden"):
        if getattr(member, flag):
            record[flag] = True
    record["indicators"] = _by_number(member.indicators)
    return record


def bmn_record(household: DemoHousehold) -> dict[str, Any]:
    record: dict[str, Any] = {
        "household_id": household.household_id,
        "survey_year": SURVEY_YEAR,
        "village_code": household.village_code,
        "house_no": household.house_no,
        "surveyed_on": household.surveyed_on.isoformat(),
    }
    if household.income_per_capita_baht is not None:
        record["income_per_capita_baht"] = household.income_per_capita_baht
    record["happiness_score"] = household.happiness_score
    record["indicators"] = _by_number(household.indicators)
    record["members"] = [_member(m) for m in household.members]
    return record


def welfare_records(household: DemoHousehold) -> Iterator[dict[str, Any]]:
    """The registrations of the household's members who applied (round 2560, which serves
    survey year 2561), with the household's village as their registry address."""
    for member in household.members:
        if member.welfare is None or member.welfare_updated_at is None:
            continue
        yield {
            "citizen_id": member.citizen_id,
            "round": WELFARE_ROUND,
            "status": member.welfare,
            "updated_at": member.welfare_updated_at.isoformat(),
            "village_code": household.village_code,
        }


def civil_records(household: DemoHousehold) -> Iterator[dict[str, Any]]:
    for member in household.members:
        if member.died_on is not None:
            yield {
                "citizen_id": member.citizen_id,
                "event": "death",
                "date": member.died_on.isoformat(),
            }


def records_of(source: Source, household: DemoHousehold) -> Iterator[dict[str, Any]]:
    """The household's records for one source (BMN: the household itself)."""
    if source is BMN:
        yield bmn_record(household)
    elif source is WELFARE:
        yield from welfare_records(household)
    else:
        yield from civil_records(household)


def _csv_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else ""
    return "" if value is None else str(value)


def csv_rows(source: Source, record: Mapping[str, Any]) -> Iterator[list[str]]:
    """A record as CSV rows in `source.csv_columns` order: for BMN one row per member with the
    household's columns repeated and indicators as ind1..ind31 (household-unit ones repeated)."""
    rows: list[Mapping[str, Any]] = (
        [
            {**record, **member, "indicators": {**record["indicators"], **member["indicators"]}}
            for member in record["members"]
        ]
        if source is BMN
        else [record]
    )
    for row in rows:
        indicators = row.get("indicators", {})
        yield [
            _csv_text(indicators.get(c.removeprefix("ind")) if c.startswith("ind") else row.get(c))
            for c in source.csv_columns
        ]
