"""The envelope every Kafka message is wrapped in, and the events the services emit.

The envelope carries the CloudEvents 1.0 attributes `id`, `type`, `source`, `time`, `subject`
around `data`. Event IDs are derived from the type and the data, so a resent record or a replayed
computation yields the same ID and consumers can recognise it. Events ignore unknown fields, so a
field added later does not break an older consumer.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from services.contracts.indicators import Dimension
from services.contracts.records import BmnHousehold, CivilEvent, FieldError, WelfareRegistration

DataT = TypeVar("DataT", bound=BaseModel)

WelfareStatus = Literal["registered", "verified", "rejected", "withdrawn"]
PersonClass = Literal[
    "deceased",
    "not_poor",
    "target",
    "registered_poor",
    "unregistered_poor",
    "welfare_only",
    "removed",
]
AgeBand = Literal["0-5", "6-14", "15-59", "60+"]
SourceKind = Literal["bmn", "welfare", "civil"]


class EventModel(BaseModel):
    """Base of event payloads: read-only, unknown fields ignored (additions are compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Envelope(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 attributes around one payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(
        description="Derived from type and data: the same content always has the same id"
    )
    type: str = Field(description="e.g. th.tpmap.bmn.household.v1")
    source: str = Field(description="Who emitted it, e.g. /ingest/CDD or /matcher")
    time: datetime
    subject: str | None = Field(default=None, description="The key the event is about")
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT


PayloadEncoding = Literal["utf-8", "base64"]


def text_or_base64(payload: bytes) -> tuple[str, PayloadEncoding]:
    """Bytes as sent, kept in a JSON event: UTF-8 text when they are, base64 when not."""
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"


def content_id(event_type: str, data: BaseModel) -> str:
    """A stable ID for (type, data): SHA-256 over the canonical JSON (sorted keys), 32 hex digits."""
    return _content_id(event_type, data.model_dump(mode="json"))


def _content_id(event_type: str, data: dict[str, Any]) -> str:
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(event_type.encode() + b"\n" + canonical).hexdigest()[:32]


def envelope(
    event_type: str,
    source: str,
    data: DataT,
    subject: str | None = None,
    time: datetime | None = None,
) -> Envelope[DataT]:
    """Wraps `data`, with its content-derived ID."""
    return Envelope[DataT](
        id=content_id(event_type, data),
        type=event_type,
        source=source,
        time=time or datetime.now(UTC),
        subject=subject,
        data=data,
    )


def envelope_json(
    event_type: str,
    source: str,
    data: BaseModel,
    subject: str | None = None,
    time: datetime | None = None,
) -> bytes:
    """`envelope(...)` as the UTF-8 JSON a producer sends, with the data dumped once for both its
    ID and the message (the services' hot path: `envelope(...).model_dump_json()` dumped it
    twice and validated the envelope it had just built)."""
    payload = data.model_dump(mode="json")
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": _content_id(event_type, payload),
            "type": event_type,
            "source": source,
            "time": time or datetime.now(UTC),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": payload,
        },
        option=orjson.OPT_UTC_Z,
    )


# --- ingest ------------------------------------------------------------------------------------


class RejectedRecord(EventModel):
    """A record ingest refused, kept with its original bytes so nothing sent is ever lost."""

    agency: str = Field(description="The agency whose key sent it, or the raw topic's producer")
    source: SourceKind
    channel: Literal["http", "kafka"]
    request_id: str | None = Field(
        default=None, description="HTTP request or Kafka topic:partition:offset"
    )
    index: int | None = Field(
        default=None, description="Position of the record in its batch, from 0"
    )
    line: int | None = Field(default=None, description="Line in NDJSON or CSV, from 1")
    payload: str = Field(
        description="The record as sent: UTF-8 text, or base64 if it was not UTF-8"
    )
    payload_encoding: PayloadEncoding = "utf-8"
    payload_bytes: int = Field(ge=0, description="Size of the record as sent")
    truncated: bool = Field(
        default=False, description="True when only the first bytes are kept (over the size limit)"
    )
    errors: list[FieldError]
    received_at: datetime


# --- matcher -----------------------------------------------------------------------------------


class PersonStatus(EventModel):
    """One person in one survey year, as the targeting rules classify them."""

    citizen_id: str
    survey_year: int
    household_id: str | None
    village_code: str | None = Field(description="The household's village, or the registry address")
    person_class: PersonClass
    deprivation: list[Dimension] = Field(
        description="The household's deprivation set S, mask order"
    )
    failed_indicators: list[int] = Field(description="Indicators (of all 31) the household fails")
    applicable_indicators: list[int] = Field(
        description="Indicators whose household status is not na"
    )
    welfare_status: WelfareStatus | None
    age_band: AgeBand | None
    disabled: bool = False
    chronic_patient: bool = False
    bedridden: bool = False
    version: int = Field(ge=1, description="Grows with every change of this person-year")


class HouseholdStatus(EventModel):
    """One household in one survey year: deprivation, target and field-work priority."""

    household_id: str
    survey_year: int
    village_code: str
    source: Literal["bmn", "field"]
    house_no: str | None = None
    deprivation: list[Dimension]
    failed_indicators: list[int]
    member_count: int = Field(ge=0, description="Living members")
    target_members: int = Field(ge=0)
    registered_members: int = Field(ge=0, description="Members registered or verified")
    unregistered_members: int = Field(ge=0, description="Members with no card registration")
    vulnerable_members: int = Field(ge=0, description="Members 60+, disabled or bedridden")
    mpi_poor: bool
    target: bool
    nocard: bool
    crisis: bool
    priority: int = Field(description="Larger first: crisis, then |S|, then vulnerable members")
    happiness_score: float | None = None
    version: int = Field(ge=1)


# --- logbook -----------------------------------------------------------------------------------


class LogbookEventBase(EventModel):
    household_id: str
    survey_year: int
    village_code: str
    case_id: str
    actor: str = Field(description="User ID of who did it ('system' for automatic changes)")
    occurred_at: datetime


class CaseOpened(LogbookEventBase):
    kind: Literal["case_opened"] = "case_opened"
    reason: Literal["target", "outreach"]


class CaseStatusChanged(LogbookEventBase):
    kind: Literal["case_status_changed"] = "case_status_changed"
    status: Literal["open", "no_longer_target", "closed"]


class VisitRecorded(LogbookEventBase):
    kind: Literal["visit_recorded"] = "visit_recorded"
    visit_id: str
    visited_on: date


class InterventionRecorded(LogbookEventBase):
    kind: Literal["intervention_recorded"] = "intervention_recorded"
    intervention_id: str
    dimension: Dimension
    agency_code: str
    amount_baht: float = Field(ge=0)
    status: Literal["planned", "in_progress", "done"]


class ResolutionRecorded(LogbookEventBase):
    kind: Literal["resolution_recorded"] = "resolution_recorded"
    dimension: Dimension
    resolution: Literal["helped", "self_resolved", "in_progress"]


LogbookEvent = Annotated[
    CaseOpened | CaseStatusChanged | VisitRecorded | InterventionRecorded | ResolutionRecorded,
    Field(discriminator="kind"),
]


class LogbookEventData(EventModel):
    """The payload on logbook.events.v1: one of the logbook's event kinds."""

    event: LogbookEvent


# --- reporting ---------------------------------------------------------------------------------


class DeprivationBin(EventModel):
    """Counts of one exact deprivation set in an area: with 32 bins every mask is answered exactly."""

    deprivation_set: str = Field(pattern=r"^[01]{5}$", description="Mask order: health..access")
    households: int = 0
    persons: int = 0
    registered_persons: int = Field(default=0, description="registered or verified")
    target_persons: int = 0
    target_households: int = 0
    nocard_households: int = 0
    crisis_households: int = 0
    target_by_indicator: dict[int, int] = Field(default_factory=dict)


class AreaAggregate(EventModel):
    """The latest figures of one area and survey year (TPMAP-RULES.md section 4)."""

    survey_year: int
    area_code: str
    level: Literal["country", "province", "district", "subdistrict", "village"]
    households_surveyed: int = 0
    persons_surveyed: int = 0
    welfare_registered: int = 0
    welfare_verified: int = 0
    elderly: int = 0
    disabled: int = 0
    chronic_patients: int = 0
    welfare_only: int = 0
    indicator_applicable: dict[int, int] = Field(default_factory=dict)
    indicator_failed: dict[int, int] = Field(default_factory=dict)
    bins: list[DeprivationBin] = Field(default_factory=list, description="Non-empty sets only")
    progress: dict[str, int] = Field(default_factory=dict, description="Logbook progress counts")
    as_of: datetime


# --- every consumer ----------------------------------------------------------------------------


class DeadLetter(EventModel):
    """A message a consumer could not process, kept with the error for a person to look at."""

    consumer: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str = Field(description="The message value: UTF-8 text, or base64 if it was not UTF-8")
    value_encoding: PayloadEncoding = "utf-8"
    error: str
    failed_at: datetime


# The event type of each payload model, as written in the envelope's `type`.
EVENT_TYPES: dict[str, type[BaseModel]] = {
    "th.tpmap.bmn.household.v1": BmnHousehold,
    "th.tpmap.welfare.registration.v1": WelfareRegistration,
    "th.tpmap.civil.event.v1": CivilEvent,
    "th.tpmap.ingest.rejected.v1": RejectedRecord,
    "th.tpmap.targeting.person-status.v1": PersonStatus,
    "th.tpmap.targeting.household-status.v1": HouseholdStatus,
    "th.tpmap.logbook.event.v1": LogbookEventData,
    "th.tpmap.reporting.area-aggregate.v1": AreaAggregate,
    "th.tpmap.dead-letter.v1": DeadLetter,
}
