"""Request and response bodies of the logbook API, with the examples OpenAPI shows."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.contracts.events import AgeBand, PersonClass, WelfareStatus
from services.contracts.indicators import Dimension
from services.contracts.records import BANGKOK
from services.logbook.agencies import agencies
from services.logbook.cases import CaseReason, CaseStatus, Progress, Resolution
from services.logbook.scope import Role

InterventionStatus = Literal["planned", "in_progress", "done"]
MAX_NOTE = 4000


def _not_after_tomorrow(value: date | None) -> date | None:
    if value is not None and value > datetime.now(BANGKOK).date() + timedelta(days=1):
        msg = f"{value} is in the future; dates are Common Era (BE 2561 = CE 2018)"
        raise ValueError(msg)
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ErrorReply(BaseModel):
    detail: Any


class Me(BaseModel):
    user_id: str
    display_name: str
    role: Role
    role_th: str
    areas: list[str]
    sees_full_citizen_ids: bool


class DimensionLabel(BaseModel):
    dimension: Dimension
    label_th: str


class IndicatorLabel(BaseModel):
    number: int
    dimension: Dimension | None
    label_th: str
    label_en: str


class CaseSummary(BaseModel):
    case_id: str
    household_id: str
    survey_year: int
    village_code: str
    village_name_th: str
    village_name_en: str
    house_no: str | None
    reason: CaseReason
    reason_th: str
    status: CaseStatus
    status_th: str
    crisis: bool
    priority: int
    deprivation: list[DimensionLabel]
    member_count: int
    target_members: int
    unregistered_members: int
    vulnerable_members: int
    opened_at: datetime
    updated_at: datetime


class CaseList(BaseModel):
    cases: list[CaseSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class MemberOut(BaseModel):
    citizen_id: str = Field(description="In full for district and team users, masked otherwise")
    person_class: PersonClass
    welfare_status: WelfareStatus | None
    age_band: AgeBand | None
    disabled: bool
    chronic_patient: bool
    bedridden: bool
    needs_registration: bool = Field(
        description="Poor and not registered for the welfare card: the outreach to do"
    )


class VisitIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "visited_on": "2018-07-02",
                    "team_member": "สมศรี ใจดี",
                    "notes": "เยี่ยมบ้าน ผู้สูงอายุติดเตียง ต้องการรถเข็น",
                    "latitude": 16.5431,
                    "longitude": 104.7235,
                }
            ]
        },
    )

    visited_on: date
    team_member: str = Field(min_length=1, max_length=200)
    notes: str = Field(default="", max_length=MAX_NOTE)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    _future = field_validator("visited_on")(_not_after_tomorrow)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            msg = "give latitude and longitude together, or neither"
            raise ValueError(msg)
        return self


class VisitOut(BaseModel):
    visit_id: str
    visited_on: date
    team_member: str
    notes: str
    latitude: float | None
    longitude: float | None
    recorded_by: str
    recorded_at: datetime


class InterventionIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "dimension": "income",
                    "agency_code": "DOAE",
                    "kind": "อาชีพเสริม",
                    "description": "พันธุ์ไก่ไข่ 20 ตัว และอาหาร 3 เดือน",
                    "amount_baht": 4500,
                    "status": "planned",
                    "started_on": "2018-07-10",
                }
            ]
        },
    )

    dimension: Dimension
    agency_code: str = Field(description="A code of GET /v1/agencies")
    kind: str = Field(min_length=1, max_length=100, description="e.g. อาชีพเสริม, ซ่อมบ้าน")
    description: str = Field(default="", max_length=MAX_NOTE)
    amount_baht: Decimal = Field(default=Decimal(0), ge=0, le=100_000_000, decimal_places=2)
    status: InterventionStatus = "planned"
    started_on: date | None = None
    completed_on: date | None = None

    _future = field_validator("started_on", "completed_on")(_not_after_tomorrow)

    @field_validator("agency_code")
    @classmethod
    def _known_agency(cls, value: str) -> str:
        if value not in agencies():
            msg = f"unknown agency {value!r}; see GET /v1/agencies"
            raise ValueError(msg)
        return value


class InterventionPatch(Body):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"status": "done", "completed_on": "2018-09-30"}]},
    )

    kind: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=MAX_NOTE)
    amount_baht: Decimal | None = Field(default=None, ge=0, le=100_000_000, decimal_places=2)
    status: InterventionStatus | None = None
    started_on: date | None = None
    completed_on: date | None = None

    _future = field_validator("started_on", "completed_on")(_not_after_tomorrow)


class InterventionOut(BaseModel):
    intervention_id: str
    dimension: Dimension
    agency_code: str
    agency_name_th: str
    kind: str
    description: str
    amount_baht: Decimal
    status: InterventionStatus
    started_on: date | None
    completed_on: date | None
    recorded_by: str
    recorded_at: datetime
    updated_at: datetime


class ResolutionIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"resolution": "helped", "note": "มีรายได้จากไก่ไข่"}]},
    )

    resolution: Resolution
    note: str = Field(default="", max_length=MAX_NOTE)


class ResolutionOut(BaseModel):
    dimension: Dimension
    label_th: str
    resolution: Resolution
    resolution_th: str
    note: str
    recorded_by: str
    recorded_at: datetime


class CaseDetail(CaseSummary):
    failed_indicators: list[IndicatorLabel]
    members: list[MemberOut]
    resolutions: list[ResolutionOut]
    visits: list[VisitOut]
    interventions: list[InterventionOut]
    progress: Progress


class AgencyOut(BaseModel):
    code: str
    name_th: str
    name_en: str
    dimensions: list[Dimension]


class FieldHouseholdOut(BaseModel):
    household_id: str
    village_code: str
    record: dict[str, Any] = Field(
        description="The household as validated (citizen IDs masked for province and national)"
    )
    added_by: str
    added_at: datetime


class AuditEntry(BaseModel):
    audit_id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    case_id: str | None
    village_code: str | None
    before: Any
    after: Any


FIELD_HOUSEHOLD_EXAMPLE: dict[str, Any] = {
    "survey_year": 2561,
    "village_code": "49010101",
    "house_no": "88 หมู่ 1 (บ้านเช่า ไม่อยู่ในทะเบียน จปฐ.)",
    "surveyed_on": "2018-07-02",
    "income_per_capita_baht": 21000,
    "indicators": {"8": "fail", "22": "fail"},
    "members": [
        {
            "citizen_id": "9490100001114",
            "age": 71,
            "sex": "F",
            "bedridden": True,
            "indicators": {"21": "fail"},
        }
    ],
}
