"""Every kind of invalid record is refused with the field and the reason; valid ones pass."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from services.contracts.citizen_id import with_check_digit
from services.contracts.indicators import indicator_set_for
from services.contracts.records import (
    BmnHousehold,
    CivilEvent,
    InvalidRecordError,
    WelfareRegistration,
    parse_record,
)
from tests.synthetic import citizen_id, household, valid_households


def errors_of(model: type[Any], payload: Any) -> list[tuple[str, str]]:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    with pytest.raises(InvalidRecordError) as caught:
        parse_record(model, raw)
    return [(e.field, e.message) for e in caught.value.errors]


def mutated(change: Any) -> dict[str, Any]:
    record = deepcopy(household())
    change(record)
    return record


def test_valid_household_parses_with_thai_text() -> None:
    parsed = parse_record(BmnHousehold, orjson.dumps(household()))
    assert parsed.house_no == "12/3 หมู่ 1"
    assert parsed.members[1].disabled is True
    assert parsed.members[0].bedridden is False
    assert parsed.source == "bmn"


def test_both_json_text_and_decoded_objects_are_accepted() -> None:
    assert parse_record(BmnHousehold, household()) == parse_record(
        BmnHousehold, orjson.dumps(household())
    )


def test_ids_starting_with_zero_are_accepted() -> None:
    record = household()
    record["members"][0]["citizen_id"] = with_check_digit("012345678901")
    assert parse_record(BmnHousehold, record).members[0].citizen_id.startswith("0")


INVALID_HOUSEHOLDS = {
    "wrong check digit": (
        lambda r: r["members"][0].update(
            citizen_id=citizen_id(1)[:12] + str((int(citizen_id(1)[12]) + 1) % 10)
        ),
        "members.0.citizen_id",
        "check digit is",
    ),
    "citizen id too short": (
        lambda r: r["members"][1].update(citizen_id="12345"),
        "members.1.citizen_id",
        "must be exactly 13 digits",
    ),
    "village code shape": (
        lambda r: r.update(village_code="4901-01"),
        "village_code",
        "must be 8 digits",
    ),
    "unknown province": (
        lambda r: r.update(village_code="99010101"),
        "village_code",
        "unknown province 99",
    ),
    "unknown district": (
        lambda r: r.update(village_code="49990101"),
        "village_code",
        "unknown district 4999",
    ),
    "unknown subdistrict": (
        lambda r: r.update(village_code="49014901"),
        "village_code",
        "unknown subdistrict 490149",
    ),
    "person-unit result outside its age range": (
        lambda r: r["members"][0]["indicators"].update({"15": "fail"}),
        "members.0.indicators.15",
        "applies to ages 3-5; a member aged 42",
    ),
    "elderly indicator on a child": (
        lambda r: r["members"][2]["indicators"].update({"21": "pass"}),
        "members.2.indicators.21",
        "applies to ages 60-",
    ),
    "household-unit result on a member": (
        lambda r: r["members"][0]["indicators"].update({"8": "fail"}),
        "members.0.indicators.8",
        "household-unit indicator",
    ),
    "person-unit result on the household": (
        lambda r: r["indicators"].update({"7": "fail"}),
        "indicators.7",
        "person-unit indicator",
    ),
    "income contradicting indicator 22": (
        lambda r: r["indicators"].update({"22": "pass"}),
        "indicators.22",
        "implies fail (threshold 38000",
    ),
    "income above threshold but 22 fails": (
        lambda r: r.update(income_per_capita_baht=38_000),
        "indicators.22",
        "implies pass",
    ),
    "citizen id twice in one household": (
        lambda r: r["members"][2].update(citizen_id=citizen_id(1)),
        "members.2.citizen_id",
        "appears twice in this household (also members.0)",
    ),
    "unsupported survey year": (
        lambda r: r.update(survey_year=2559),
        "survey_year",
        "not supported",
    ),
    "CE survey year": (lambda r: r.update(survey_year=2018), "survey_year", "send 2561 (CE + 543)"),
    "unknown indicator number": (
        lambda r: r["indicators"].update({"32": "pass"}),
        "indicators.32",
        "unknown indicator",
    ),
    "bad indicator result": (
        lambda r: r["indicators"].update({"4": "ok"}),
        "indicators.4",
        "'pass', 'fail' or 'na'",
    ),
    "missing field": (lambda r: r.pop("household_id"), "household_id", "Field required"),
    "wrong type": (lambda r: r["members"][0].update(age="42"), "members.0.age", "valid integer"),
    "age out of range": (
        lambda r: r["members"][0].update(age=131),
        "members.0.age",
        "less than or equal to 130",
    ),
    "bad sex": (lambda r: r["members"][0].update(sex="X"), "members.0.sex", "'M' or 'F'"),
    "empty household": (lambda r: r.update(members=[]), "members", "at least 1 item"),
    "huge field": (lambda r: r.update(house_no="ก" * 10_000), "house_no", "at most 40 characters"),
    "household id too long": (
        lambda r: r.update(household_id="H" * 41),
        "household_id",
        "at most 40",
    ),
    "unknown field": (lambda r: r.update(houshold_id="x"), "houshold_id", "unknown field"),
    "unknown member field": (
        lambda r: r["members"][0].update(agee=3),
        "members.0.agee",
        "unknown field",
    ),
    "happiness out of range": (
        lambda r: r.update(happiness_score=11),
        "happiness_score",
        "less than or equal to 10",
    ),
    "negative income": (
        lambda r: r.update(income_per_capita_baht=-1),
        "income_per_capita_baht",
        "greater than or equal",
    ),
    "date as a number": (lambda r: r.update(surveyed_on=20180315), "surveyed_on", "ISO 8601"),
    "BE date": (lambda r: r.update(surveyed_on="2561-03-15"), "surveyed_on", "in the future"),
    "bad source": (lambda r: r.update(source="excel"), "source", "'bmn' or 'field'"),
}


@pytest.mark.parametrize(
    ("change", "field", "reason"), INVALID_HOUSEHOLDS.values(), ids=INVALID_HOUSEHOLDS
)
def test_invalid_household_names_field_and_reason(change: Any, field: str, reason: str) -> None:
    errors = errors_of(BmnHousehold, mutated(change))
    assert any(f == field and reason in message for f, message in errors), errors


def test_every_problem_of_a_record_is_reported() -> None:
    def two_problems(r: dict[str, Any]) -> None:
        r["members"][0]["indicators"]["15"] = "fail"
        r["indicators"]["22"] = "pass"

    fields = {f for f, _ in errors_of(BmnHousehold, mutated(two_problems))}
    assert fields == {"members.0.indicators.15", "indicators.22"}


def test_duplicate_member_message_masks_the_citizen_id() -> None:
    errors = errors_of(
        BmnHousehold, mutated(lambda r: r["members"][2].update(citizen_id=citizen_id(1)))
    )
    assert all(citizen_id(1) not in message for _, message in errors)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"household_id": ', "Invalid JSON"),
        (b'{"household_id": "\xff\xfe"}', "Invalid JSON"),
        (b"[]", ""),
    ],
)
def test_malformed_payloads(payload: bytes, reason: str) -> None:
    errors = errors_of(BmnHousehold, payload)
    assert errors
    assert errors[0][0] == "(record)"
    assert reason in errors[0][1]


def welfare(**overrides: Any) -> dict[str, Any]:
    return {
        "citizen_id": citizen_id(1),
        "round": 2560,
        "status": "verified",
        "updated_at": "2018-01-15T10:30:00+07:00",
        "village_code": "49010101",
        **overrides,
    }


def test_welfare_registration_naive_time_is_bangkok() -> None:
    parsed = parse_record(WelfareRegistration, welfare(updated_at="2018-01-15T10:30:00"))
    assert parsed.updated_at == datetime(2018, 1, 15, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"status": "approved"}, "status", "'registered', 'verified', 'rejected' or 'withdrawn'"),
        ({"round": 2017}, "round", "send 2560"),
        ({"updated_at": "yesterday"}, "updated_at", "datetime"),
        ({"updated_at": 1516000000}, "updated_at", "ISO 8601"),
        ({"village_code": "99999999"}, "village_code", "unknown province"),
        ({"citizen_id": "1234567890123"}, "citizen_id", "check digit"),
    ],
)
def test_invalid_welfare_registrations(overrides: dict[str, Any], field: str, reason: str) -> None:
    errors = errors_of(WelfareRegistration, welfare(**overrides))
    assert any(f == field and reason in m for f, m in errors), errors


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"event": "birth"}, "event", "'death'"),
        ({"date": "2999-01-01"}, "date", "in the future"),
        ({"date": "31/01/2561"}, "date", "valid date"),
    ],
)
def test_invalid_civil_events(overrides: dict[str, Any], field: str, reason: str) -> None:
    record = {"citizen_id": citizen_id(1), "event": "death", "date": "2018-06-01", **overrides}
    errors = errors_of(CivilEvent, record)
    assert any(f == field and reason in m for f, m in errors), errors


@settings(max_examples=200)
@given(valid_households())
def test_any_consistent_household_is_accepted_and_round_trips(record: dict[str, Any]) -> None:
    parsed = parse_record(BmnHousehold, orjson.dumps(record))
    assert parse_record(BmnHousehold, parsed.model_dump_json()) == parsed


@given(valid_households())
def test_income_indicator_follows_the_threshold(record: dict[str, Any]) -> None:
    parsed = parse_record(BmnHousehold, record)
    indicator_set = indicator_set_for(parsed.survey_year)
    assert indicator_set is not None
    implied = parsed.income_indicator_result(indicator_set)
    if parsed.income_per_capita_baht is None:
        assert implied == "na"
    else:
        assert (implied == "fail") == (parsed.income_per_capita_baht < 38_000)
