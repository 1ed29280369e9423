"""The three sources ingest accepts: their record model, topics, message key and CSV layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.contracts.records import BmnHousehold, CivilEvent, Record, WelfareRegistration
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    CIVIL_EVENTS,
    RAW_BMN,
    RAW_CIVIL,
    RAW_WELFARE,
    WELFARE_REGISTRATIONS,
    TopicSpec,
)

SourceName = Literal["bmn", "welfare", "civil"]

# BMN CSV: one row per member, household columns repeated on every row of the household.
BMN_HOUSEHOLD_COLUMNS = (
    "household_id",
    "survey_year",
    "village_code",
    "house_no",
    "surveyed_on",
    "income_per_capita_baht",
    "happiness_score",
    "source",
)
BMN_MEMBER_COLUMNS = ("citizen_id", "age", "sex", "disabled", "chronic_patient", "bedridden")
INDICATOR_COLUMNS = tuple(f"ind{n}" for n in range(1, 32))


@dataclass(frozen=True, slots=True)
class Source:
    name: SourceName
    agency_label: str
    model: type[Record]
    topic: TopicSpec
    raw_topic: TopicSpec
    path: str
    csv_columns: tuple[str, ...]
    csv_required: tuple[str, ...]

    @property
    def event_type(self) -> str:
        return self.topic.require_event_type()


def message_key(record: Record) -> str:
    """The Kafka key of a validated record: household_id for BMN, citizen_id otherwise."""
    if isinstance(record, BmnHousehold):
        return record.household_id
    return record.citizen_id


BMN = Source(
    name="bmn",
    agency_label="CDD household survey (จปฐ.)",
    model=BmnHousehold,
    topic=BMN_HOUSEHOLDS,
    raw_topic=RAW_BMN,
    path="/v1/bmn/households",
    csv_columns=BMN_HOUSEHOLD_COLUMNS + BMN_MEMBER_COLUMNS + INDICATOR_COLUMNS,
    csv_required=("household_id", "survey_year", "village_code", "citizen_id", "age", "sex"),
)
WELFARE = Source(
    name="welfare",
    agency_label="MOF state welfare card registry",
    model=WelfareRegistration,
    topic=WELFARE_REGISTRATIONS,
    raw_topic=RAW_WELFARE,
    path="/v1/welfare/registrations",
    csv_columns=("citizen_id", "round", "status", "updated_at", "village_code"),
    csv_required=("citizen_id", "round", "status", "updated_at"),
)
CIVIL = Source(
    name="civil",
    agency_label="DOPA civil registry",
    model=CivilEvent,
    topic=CIVIL_EVENTS,
    raw_topic=RAW_CIVIL,
    path="/v1/civil/events",
    csv_columns=("citizen_id", "event", "date"),
    csv_required=("citizen_id", "event", "date"),
)

SOURCES: dict[SourceName, Source] = {s.name: s for s in (BMN, WELFARE, CIVIL)}
SOURCES_BY_RAW_TOPIC: dict[str, Source] = {s.raw_topic.name: s for s in SOURCES.values()}
