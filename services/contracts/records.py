"""The external records agencies send (BMN households, welfare registrations, civil events) and
their validation.

Every rule names the field it concerns and why, so an agency can fix the record. The models are
strict (no silent coercion of "12" to 12) and read-only. `parse_record` is the door: it also
refuses unknown fields, which catches misspelt keys; consumers on the bus validate without that
check, so fields added later are ignored by older consumers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.contracts.areas import village_code_problem
from services.contracts.citizen_id import citizen_id_problem, mask_citizen_id
from services.contracts.indicators import (
    INCOME_INDICATOR,
    MAX_AGE,
    IndicatorResult,
    IndicatorSet,
    Unit,
    indicator_set_for,
    supported_years,
)

BANGKOK = timezone(timedelta(hours=7), "Asia/Bangkok")
BE_OFFSET = 543
# Anything below this cannot be a Buddhist-Era year of this platform; it is likely a CE year.
_FIRST_PLAUSIBLE_BE_YEAR = 2500
_LAST_PLAUSIBLE_BE_YEAR = 2700
MAX_MEMBERS = 100
HOUSE_NO_MAX_LENGTH = 40

# parse_record passes this context; it turns on the unknown-field check.
_DOOR_CONTEXT = {"forbid_unknown_fields": True}


class FieldError(BaseModel):
    """One reason a record was refused: the field's dotted path and a message for the sender."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(
        description="Dotted path, e.g. members.2.citizen_id; '(record)' for the whole record"
    )
    message: str


class InvalidRecordError(ValueError):
    """A record failed validation; `errors` says where and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


def _error(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context or None)


def _check_citizen_id(value: str) -> str:
    problem = citizen_id_problem(value)
    if problem is not None:
        raise _error("citizen_id", "invalid citizen ID: {problem}", problem=problem)
    return value


def _check_village_code(value: str) -> str:
    problem = village_code_problem(value)
    if problem is not None:
        raise _error("village_code", "invalid village code: {problem}", problem=problem)
    return value


def _check_be_year(value: int) -> int:
    if value < _FIRST_PLAUSIBLE_BE_YEAR:
        raise _error(
            "be_year",
            "{value} is not a Buddhist-Era year; if it is CE, send {be} (CE + 543)",
            value=value,
            be=value + BE_OFFSET,
        )
    if value > _LAST_PLAUSIBLE_BE_YEAR:
        raise _error("be_year", "{value} is not a plausible Buddhist-Era year", value=value)
    return value


def _check_survey_year(value: int) -> int:
    _check_be_year(value)
    if indicator_set_for(value) is None:
        years = supported_years()
        raise _error(
            "survey_year",
            "survey year {value} is not supported; supported years are {first}-{last} (BE)",
            value=value,
            first=years.start,
            last=years.stop - 1,
        )
    return value


def _require_iso_text(value: object) -> object:
    # JSON has no date type: accept ISO text (or a date from Python callers), never a number.
    if isinstance(value, str | date):
        return value
    raise _error(
        "iso_text", "must be an ISO 8601 string, e.g. 2018-05-31 or 2018-05-31T09:00:00+07:00"
    )


def _not_in_future(value: date) -> date:
    today = datetime.now(BANGKOK).date()
    if value > today + timedelta(days=1):
        raise _error(
            "future_date",
            "{value} is in the future; ISO dates use the Common Era (BE 2561 = CE 2018)",
            value=value.isoformat(),
        )
    return value


def _as_bangkok_if_naive(value: datetime) -> datetime:
    # Thai agencies often send local time without an offset: read it as Bangkok time.
    aware = value.replace(tzinfo=BANGKOK) if value.tzinfo is None else value
    _not_in_future(aware.astimezone(BANGKOK).date())
    return aware.astimezone(UTC)


CitizenId = Annotated[str, AfterValidator(_check_citizen_id)]
VillageCode = Annotated[str, AfterValidator(_check_village_code)]
BuddhistEraYear = Annotated[int, AfterValidator(_check_be_year)]
SurveyYear = Annotated[int, AfterValidator(_check_survey_year)]
IsoDate = Annotated[
    date, BeforeValidator(_require_iso_text), Field(strict=False), AfterValidator(_not_in_future)
]
IsoDatetime = Annotated[
    datetime,
    BeforeValidator(_require_iso_text),
    Field(strict=False),
    AfterValidator(_as_bangkok_if_naive),
]


# Keys are checked against the survey year's indicator set in BmnHousehold's model validator.
IndicatorResults = dict[str, IndicatorResult]


class RecordPart(BaseModel):
    """Base of every external record and its parts: strict types, read-only."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class RecordModel(RecordPart):
    """A whole external record, as agencies send it."""

    # Fields holding lists of nested records, checked for unknown fields with their parent.
    _nested_records: ClassVar[dict[str, type[RecordPart]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:
        # Only at the door (parse_record), and once per record rather than once per nested part:
        # this runs for every record ingest receives.
        if not (info.context or {}).get("forbid_unknown_fields") or not isinstance(data, dict):
            return data
        problems = _unknown_fields(cls, data, ())
        for name, model in cls._nested_records.items():
            items = data.get(name)
            if isinstance(items, list):
                for index, item in enumerate(items):
                    if isinstance(item, dict):
                        problems.extend(_unknown_fields(model, item, (name, index)))
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return data


def _unknown_fields(
    model: type[RecordPart], data: dict[Any, Any], loc: tuple[str | int, ...]
) -> list[InitErrorDetails]:
    fields = model.__pydantic_fields__
    if data.keys() <= fields.keys():
        return []
    known = ", ".join(fields)
    return [
        InitErrorDetails(
            type=_error("unknown_field", "unknown field; expected one of: {known}", known=known),
            loc=(*loc, str(name)),
            input=data[name],
        )
        for name in sorted(data.keys() - fields.keys(), key=str)
    ]


class Member(RecordPart):
    """A household member and their person-unit indicator results."""

    citizen_id: CitizenId = Field(description="13-digit citizen ID with its mod-11 check digit")
    age: int = Field(ge=0, le=MAX_AGE)
    sex: Literal["M", "F"]
    disabled: bool = False
    chronic_patient: bool = False
    bedridden: bool = False
    indicators: IndicatorResults = Field(
        default_factory=dict,
        description='Person-unit results by indicator number ("1".."31"); a missing key means na',
    )


class BmnHousehold(RecordModel):
    """A household of the BMN survey (จปฐ.), or one added by a field team (source = field)."""

    household_id: str = Field(
        min_length=1, max_length=40, pattern=r"^[0-9A-Za-z][0-9A-Za-z_.:/-]*$"
    )
    survey_year: SurveyYear = Field(description="Buddhist Era, e.g. 2561")
    village_code: VillageCode = Field(description="8-digit DOPA village code PPDDSSVV")
    house_no: str | None = Field(default=None, min_length=1, max_length=HOUSE_NO_MAX_LENGTH)
    surveyed_on: IsoDate | None = None
    income_per_capita_baht: float | None = Field(default=None, ge=0, le=100_000_000)
    happiness_score: float | None = Field(default=None, ge=0, le=10)
    indicators: IndicatorResults = Field(
        default_factory=dict,
        description='Household-unit results by indicator number ("1".."31"); a missing key means na',
    )
    members: list[Member] = Field(min_length=1, max_length=MAX_MEMBERS)
    source: Literal["bmn", "field"] = "bmn"

    _nested_records: ClassVar[dict[str, type[RecordPart]]] = {"members": Member}

    @model_validator(mode="after")
    def _check_against_indicator_set(self) -> Self:
        indicator_set = indicator_set_for(self.survey_year)
        if indicator_set is None:  # already reported on survey_year
            return self
        problems = [
            *self._indicator_problems(indicator_set),
            *self._income_problems(indicator_set),
            *self._duplicate_member_problems(),
        ]
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def _indicator_problems(self, indicator_set: IndicatorSet) -> list[InitErrorDetails]:
        """Unknown indicator numbers, results given at the wrong unit, and person-unit results
        outside the indicator's age range."""
        # Fast path (set operations in C): every key known, at its unit, and within the age range.
        if self.indicators.keys() <= indicator_set.household_keys and all(
            m.indicators.keys() <= indicator_set.person_keys_for_age(m.age) for m in self.members
        ):
            return []
        problems = [
            _indicator_problem(
                indicator_set, key, result, unit="household", age=None, loc=("indicators", key)
            )
            for key, result in self.indicators.items()
        ]
        for index, member in enumerate(self.members):
            problems.extend(
                _indicator_problem(
                    indicator_set,
                    key,
                    result,
                    unit="person",
                    age=member.age,
                    loc=("members", index, "indicators", key),
                )
                for key, result in member.indicators.items()
            )
        return [p for p in problems if p is not None]

    def _income_problems(self, indicator_set: IndicatorSet) -> list[InitErrorDetails]:
        key = str(INCOME_INDICATOR)
        given = self.indicators.get(key)
        if self.income_per_capita_baht is None or given is None:
            return []
        implied = self.income_indicator_result(indicator_set)
        if given == implied:
            return []
        return [
            InitErrorDetails(
                type=_error(
                    "income_contradiction",
                    "indicator 22 is {given} but income_per_capita_baht {income} implies {implied} "
                    "(threshold {threshold} baht per person per year for survey year {year})",
                    given=given,
                    income=self.income_per_capita_baht,
                    implied=implied,
                    threshold=indicator_set.income_threshold_baht,
                    year=self.survey_year,
                ),
                loc=("indicators", key),
                input=given,
            )
        ]

    def _duplicate_member_problems(self) -> list[InitErrorDetails]:
        problems = []
        first_index: dict[str, int] = {}
        for index, member in enumerate(self.members):
            earlier = first_index.setdefault(member.citizen_id, index)
            if earlier != index:
                problems.append(
                    InitErrorDetails(
                        type=_error(
                            "duplicate_member",
                            "citizen ID {masked} appears twice in this household (also members.{earlier})",
                            masked=mask_citizen_id(member.citizen_id),
                            earlier=earlier,
                        ),
                        loc=("members", index, "citizen_id"),
                        input=mask_citizen_id(member.citizen_id),
                    )
                )
        return problems

    def income_indicator_result(self, indicator_set: IndicatorSet) -> IndicatorResult:
        """Indicator 22 as the income figure implies it (na without an income figure)."""
        if self.income_per_capita_baht is None:
            return "na"
        return (
            "fail" if self.income_per_capita_baht < indicator_set.income_threshold_baht else "pass"
        )


def _indicator_problem(
    indicator_set: IndicatorSet,
    key: str,
    result: IndicatorResult,
    *,
    unit: Unit,
    age: int | None,
    loc: tuple[str | int, ...],
) -> InitErrorDetails | None:
    indicator = indicator_set.by_key.get(key)
    if indicator is None:
        count = len(indicator_set.indicators)
        problem = _error(
            "indicator_key",
            "unknown indicator {key!r}; indicators are numbered 1-{count}",
            key=key,
            count=count,
        )
    elif indicator.unit != unit:
        where = (
            "on each member, not on the household"
            if unit == "household"
            else "once in the household's indicators"
        )
        problem = _error(
            "indicator_unit",
            "indicator {n} is a {unit}-unit indicator: give it " + where,
            n=key,
            unit=indicator.unit,
        )
    elif age is not None and result != "na" and not indicator.applies_to_age(age):
        problem = _error(
            "indicator_age",
            "indicator {n} applies to ages {ages}; a member aged {age} must have na or no result",
            n=key,
            ages=indicator.ages,
            age=age,
        )
    else:
        return None
    return InitErrorDetails(type=problem, loc=loc, input=result)


class WelfareRegistration(RecordModel):
    """A person's state welfare card registration (บัตรสวัสดิการแห่งรัฐ), from MOF."""

    citizen_id: CitizenId
    round: BuddhistEraYear = Field(description="Registration round, Buddhist Era, e.g. 2560")
    status: Literal["registered", "verified", "rejected", "withdrawn"]
    updated_at: IsoDatetime = Field(
        description="ISO 8601; without an offset it is read as Bangkok time"
    )
    village_code: VillageCode | None = Field(default=None, description="Registry address, if known")


class CivilEvent(RecordModel):
    """A civil-registry event from DOPA (ทะเบียนราษฎร์); deaths are the one kind used."""

    citizen_id: CitizenId
    event: Literal["death"]
    date: IsoDate


Record = BmnHousehold | WelfareRegistration | CivilEvent
R = TypeVar("R", bound=RecordModel)


def field_errors(error: ValidationError) -> list[FieldError]:
    """Pydantic's errors as dotted field paths and messages."""
    return [
        FieldError(
            # A dict key's own error ends its path with '[key]'; the key itself names the field.
            field=".".join(str(part) for part in detail["loc"] if part != "[key]") or "(record)",
            message=detail["msg"],
        )
        for detail in error.errors(include_url=False)
    ]


def parse_record(model: type[R], payload: bytes | str | Mapping[str, object]) -> R:
    """Validates one external record (JSON text or a decoded object) at the platform's door.

    Raises InvalidRecordError naming every field that is wrong and why.
    """
    try:
        if isinstance(payload, bytes | str):
            return model.model_validate_json(payload, context=_DOOR_CONTEXT)
        return model.model_validate(payload, context=_DOOR_CONTEXT)
    except ValidationError as error:
        raise InvalidRecordError(field_errors(error)) from None
