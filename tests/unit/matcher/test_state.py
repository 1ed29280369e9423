"""The matcher's state transitions: re-survey replacement, and order independence — random
interleavings of the same records, with duplicates and stale resends, end where a batch
evaluation of the newest records says."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.events import HouseholdStatus, PersonStatus, content_id
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration, parse_record
from services.matcher.state import (
    HouseholdState,
    MemberFacts,
    Membership,
    PersonState,
    on_death,
    on_household_record,
    on_member_facts,
    on_membership,
    on_welfare,
)
from tests.synthetic import citizen_id
from tests.unit.matcher.reference import batch_evaluation

YEAR = 2561
PEOPLE = [citizen_id(n) for n in range(1, 7)]
BMN_TYPE = "th.tpmap.bmn.household.v1"


@dataclass
class Pipeline:
    """Both kinds of partition, with Kafka's order per producer: internal messages in FIFO."""

    households: dict[str, HouseholdState] = field(default_factory=dict)
    persons: dict[str, PersonState] = field(default_factory=dict)
    internal: list[Membership | MemberFacts] = field(default_factory=list)
    person_out: dict[tuple[str, int], PersonStatus] = field(default_factory=dict)
    household_out: dict[tuple[str, int], HouseholdStatus] = field(default_factory=dict)
    sent: int = 0

    def feed(self, item: Any) -> None:
        if isinstance(item, BmnHousehold):
            state = self.households.get(item.household_id, HouseholdState())
            state, memberships, statuses = on_household_record(
                state, item, content_id(BMN_TYPE, item)
            )
            self.households[item.household_id] = state
            self.internal += memberships
            self._households(statuses)
        elif isinstance(item, MemberFacts):
            state, statuses = on_member_facts(
                self.households.get(item.household_id, HouseholdState()), item
            )
            self.households[item.household_id] = state
            self._households(statuses)
        else:
            key = item.citizen_id
            state = self.persons.get(key, PersonState())
            if isinstance(item, Membership):
                state, statuses, facts = on_membership(state, item)
            elif isinstance(item, WelfareRegistration):
                state, statuses, facts = on_welfare(state, item)
            else:
                state, statuses, facts = on_death(state, item)
            self.persons[key] = state
            self.internal += facts
            for status in statuses:
                self._keep(self.person_out, (status.citizen_id, status.survey_year), status)

    def _households(self, statuses: list[HouseholdStatus]) -> None:
        for status in statuses:
            self._keep(self.household_out, (status.household_id, status.survey_year), status)

    def _keep(self, out: dict[Any, Any], key: Any, status: Any) -> None:
        self.sent += 1
        previous = out.get(key)
        assert previous is None or status.version > previous.version, "versions only grow"
        out[key] = status

    def run(self, inputs: list[Any], rng: random.Random) -> None:
        pending = list(inputs)
        while pending or self.internal:
            if pending and (not self.internal or rng.random() < 0.5):
                self.feed(pending.pop(0))
            else:
                self.feed(self.internal.pop(0))


def household(
    hh: str, members: list[int], surveyed: int, failing: bool, ages: list[int]
) -> BmnHousehold:
    return parse_record(
        BmnHousehold,
        {
            "household_id": hh,
            "survey_year": YEAR,
            "village_code": "49010101",
            "surveyed_on": f"2018-0{surveyed}-01",
            "income_per_capita_baht": 20_000 if failing else 50_000,
            "indicators": {"8": "fail" if failing and surveyed % 2 else "pass"},
            "members": [
                {"citizen_id": PEOPLE[m], "age": ages[m], "sex": "F", "disabled": m == 2}
                for m in members
            ],
        },
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """(every record, the same plus duplicates and stale resends in a random order)."""
    ages = draw(st.lists(st.integers(0, 90), min_size=len(PEOPLE), max_size=len(PEOPLE)))
    records: list[Any] = []
    for hh in ("h1", "h2", "h3"):
        for surveyed in draw(st.sets(st.integers(1, 9), min_size=1, max_size=3)):
            members = draw(st.sets(st.integers(0, len(PEOPLE) - 1), min_size=1, max_size=4))
            records.append(household(hh, sorted(members), surveyed, draw(st.booleans()), ages))
    for person in draw(st.sets(st.integers(0, len(PEOPLE) - 1))):
        for minute in draw(st.sets(st.integers(0, 59), min_size=1, max_size=3)):
            records.append(
                WelfareRegistration(
                    citizen_id=PEOPLE[person],
                    # Round 2559 places welfare-only registrants in 2560, a year nobody surveyed.
                    round=draw(st.sampled_from([2559, 2560])),
                    status=draw(
                        st.sampled_from(["registered", "verified", "rejected", "withdrawn"])
                    ),
                    updated_at=datetime(2017, 12, 1, 9, minute, tzinfo=UTC),
                    village_code=draw(st.sampled_from([None, "49010102"])),
                )
            )
    for person in draw(st.sets(st.integers(0, len(PEOPLE) - 1), max_size=2)):
        for year in draw(st.sets(st.integers(2016, 2019), min_size=1, max_size=2)):
            records.append(
                CivilEvent(citizen_id=PEOPLE[person], event="death", date=date(year, 5, 1))
            )
    shuffled = records + draw(
        st.lists(st.sampled_from(records), max_size=8)
    )  # duplicates, stale resends
    return records, draw(st.permutations(shuffled))


@settings(max_examples=300, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_any_interleaving_ends_as_the_batch_evaluation_of_the_newest_records(
    world: Any, rng: random.Random
) -> None:
    records, arrivals = world
    pipeline = Pipeline()
    pipeline.run(arrivals, rng)
    expected_persons, expected_households = batch_evaluation(records)

    for key, status in pipeline.person_out.items():
        if key not in expected_persons:
            assert status.person_class == "removed", (key, status)
    for key, expected in expected_persons.items():
        status = pipeline.person_out[key]
        assert (
            status.household_id,
            status.village_code,
            status.person_class,
            status.deprivation,
            status.age_band,
        ) == expected
    assert {
        key: (
            s.member_count,
            s.target_members,
            s.registered_members,
            s.nocard,
            s.crisis,
            s.priority,
        )
        for key, s in pipeline.household_out.items()
    } == expected_households

    # Replaying everything again changes nothing and sends nothing.
    sent = pipeline.sent
    pipeline.run(arrivals, rng)
    assert pipeline.sent == sent


def test_a_re_survey_replaces_the_household_and_a_member_who_left_is_removed() -> None:
    pipeline = Pipeline()
    ages = [40] * len(PEOPLE)
    pipeline.run([household("h1", [0, 1], 3, True, ages)], random.Random(1))
    assert pipeline.person_out[(PEOPLE[1], YEAR)].person_class == "unregistered_poor"
    pipeline.run([household("h1", [0], 5, False, ages)], random.Random(1))
    assert pipeline.person_out[(PEOPLE[1], YEAR)].person_class == "removed"
    assert pipeline.person_out[(PEOPLE[0], YEAR)].person_class == "not_poor"
    assert pipeline.household_out[("h1", YEAR)].member_count == 1
    # The older survey sent again is stale: nothing changes.
    sent = pipeline.sent
    pipeline.run([household("h1", [0, 1], 3, True, ages)], random.Random(1))
    assert pipeline.sent == sent


def test_welfare_and_death_update_person_and_household() -> None:
    pipeline = Pipeline()
    ages = [70] * len(PEOPLE)
    record = household("h1", [0], 3, True, ages)
    verified = WelfareRegistration(
        citizen_id=PEOPLE[0],
        round=2560,
        status="verified",
        updated_at=datetime(2017, 1, 1, tzinfo=UTC),
    )
    pipeline.run([record, verified], random.Random(2))
    assert pipeline.person_out[(PEOPLE[0], YEAR)].person_class == "target"
    target_version = pipeline.person_out[(PEOPLE[0], YEAR)].version
    household_status = pipeline.household_out[("h1", YEAR)]
    assert household_status.target
    assert household_status.crisis  # income and living, and a member of 70
    pipeline.run(
        [CivilEvent(citizen_id=PEOPLE[0], event="death", date=date(2018, 1, 5))], random.Random(2)
    )
    assert pipeline.person_out[(PEOPLE[0], YEAR)].person_class == "deceased"
    assert pipeline.household_out[("h1", YEAR)].member_count == 0
    assert pipeline.person_out[(PEOPLE[0], YEAR)].version == target_version + 1


def test_a_verified_registrant_no_survey_lists_is_welfare_only() -> None:
    pipeline = Pipeline()
    registration = WelfareRegistration(
        citizen_id=PEOPLE[3],
        round=YEAR - 1,
        status="verified",
        updated_at=datetime(2017, 6, 1, tzinfo=UTC),
        village_code="49010102",
    )
    pipeline.run([registration], random.Random(3))
    status = pipeline.person_out[(PEOPLE[3], YEAR)]
    assert (status.person_class, status.household_id, status.village_code) == (
        "welfare_only",
        None,
        "49010102",
    )
    pipeline.run([household("h1", [3], 3, True, [40] * len(PEOPLE))], random.Random(3))
    status = pipeline.person_out[(PEOPLE[3], YEAR)]
    assert (status.person_class, status.household_id, status.village_code) == (
        "target",
        "h1",
        "49010101",
    )
    # Withdrawn, and listed by no household: welfare-only no more, but never silently dropped.
    pipeline.run([household("h1", [0], 4, True, [40] * len(PEOPLE))], random.Random(3))
    assert pipeline.person_out[(PEOPLE[3], YEAR)].person_class == "welfare_only"
    withdrawn = registration.model_copy(
        update={"status": "withdrawn", "updated_at": datetime(2017, 7, 1, tzinfo=UTC)}
    )
    pipeline.run([withdrawn], random.Random(3))
    assert pipeline.person_out[(PEOPLE[3], YEAR)].person_class == "removed"
