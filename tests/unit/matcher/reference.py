"""The matcher's expected results computed in one batch from the rules, without its state machine."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.contracts.events import content_id
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration
from services.matcher.rules import (
    MemberOutcome,
    age_band,
    assess_household,
    household_outcome,
    is_deceased,
    is_vulnerable,
    person_class,
    record_order,
    sorted_dimensions,
    welfare_order,
)

BMN_TYPE = "th.tpmap.bmn.household.v1"


def batch_evaluation(
    records: list[Any],
) -> tuple[dict[Any, tuple[Any, ...]], dict[Any, tuple[Any, ...]]]:
    """What the newest records say, computed directly from the rules, without the state machine."""
    newest: dict[str, BmnHousehold] = {}
    for r in (r for r in records if isinstance(r, BmnHousehold)):
        current = newest.get(r.household_id)
        if current is None or record_order(r, content_id(BMN_TYPE, r)) > record_order(
            current, content_id(BMN_TYPE, current)
        ):
            newest[r.household_id] = r
    welfare: dict[str, WelfareRegistration] = {}
    for r in (r for r in records if isinstance(r, WelfareRegistration)):
        if r.citizen_id not in welfare or welfare_order(r.updated_at, r.round) > welfare_order(
            welfare[r.citizen_id].updated_at, welfare[r.citizen_id].round
        ):
            welfare[r.citizen_id] = r
    deaths: dict[str, date] = {}
    for r in (r for r in records if isinstance(r, CivilEvent)):
        deaths[r.citizen_id] = min(r.date, deaths.get(r.citizen_id, r.date))

    def status_of(cid: str) -> Any:
        return welfare[cid].status if cid in welfare else None

    persons: dict[Any, tuple[Any, ...]] = {}
    households: dict[Any, tuple[Any, ...]] = {}
    for hh, record in sorted(
        newest.items(),
        key=lambda item: (record_order(item[1], content_id(BMN_TYPE, item[1])), item[0]),
    ):
        assessment = assess_household(record)
        outcomes = []
        for m in record.members:
            cls = person_class(
                assessment.deprivation,
                status_of(m.citizen_id),
                is_deceased(deaths.get(m.citizen_id), record.survey_year),
            )
            # The newest household listing a person is theirs (sorted, so the last one wins).
            persons[(m.citizen_id, record.survey_year)] = (
                hh,
                record.village_code,
                cls,
                sorted_dimensions(assessment.deprivation),
                age_band(m.age),
            )
            outcomes.append(
                MemberOutcome(
                    cls,
                    status_of(m.citizen_id),
                    is_vulnerable(m.age, disabled=m.disabled, bedridden=m.bedridden),
                )
            )
        outcome = household_outcome(assessment.deprivation, outcomes)
        households[(hh, record.survey_year)] = (
            outcome.member_count,
            outcome.target_members,
            outcome.registered_members,
            outcome.nocard,
            outcome.crisis,
            outcome.priority,
        )
    # Verified registrants no household lists in the year after their round, by their address.
    for cid, registration in welfare.items():
        year = registration.round + 1
        if (
            registration.status == "verified"
            and registration.village_code is not None
            and (cid, year) not in persons
            and not is_deceased(deaths.get(cid), year)
        ):
            persons[(cid, year)] = (None, registration.village_code, "welfare_only", [], None)
    return persons, households
