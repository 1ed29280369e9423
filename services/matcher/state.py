"""The matcher's state and its transitions, pure: each function takes a state and one input and
returns the new state with the messages to send. Faust moves them around (worker.py).

Two kinds of partition, both keyed so each owns its people:

- households (key household_id): the newest record of each survey year, the facts each member's
  partition reported (welfare status, death), and the last household status sent;
- persons (key citizen_id): welfare status, death, the person's memberships in households by
  year, and the last person status sent per year.

A household record sends a membership to each member's person partition; a person partition
sends its facts back to every household the person is in. Every merge is order-independent
(newest record by record order, latest welfare by welfare order, earliest death), so replays,
duplicates and any interleaving end in the same state and send nothing new.

States and internal messages are msgspec structs: the matcher reads, changes and writes several
for every household, and pydantic's validation and copies took more time than the rules. The
statuses it sends are the contracts' pydantic events; a state keeps the last one sent as its JSON
(`Sent`), which is all a new status is compared with. Unknown fields are ignored when read
(msgspec's default), so a field added later does not break a worker still on the older code.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, TypeVar

import msgspec
import orjson
from msgspec import field
from msgspec.structs import replace

from services.contracts.events import AgeBand, HouseholdStatus, PersonStatus, WelfareStatus
from services.contracts.indicators import Dimension
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration
from services.matcher.rules import (
    MemberOutcome,
    RecordOrder,
    WelfareOrder,
    age_band,
    assess_household,
    earliest_death,
    household_outcome,
    is_deceased,
    is_vulnerable,
    person_class,
    record_order,
    sorted_dimensions,
    welfare_only_year,
    welfare_order,
)

# --- messages between the two kinds of partition -------------------------------------------


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    """A household record's word to one member's person partition (key citizen_id)."""

    citizen_id: str
    household_id: str
    survey_year: int
    order: RecordOrder
    present: bool
    village_code: str
    deprivation: list[Dimension] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    applicable: list[int] = field(default_factory=list)
    age_band: AgeBand | None = None
    disabled: bool = False
    chronic_patient: bool = False
    bedridden: bool = False


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What a person partition knows of a person that their households need."""

    welfare: WelfareStatus | None = None
    welfare_order: WelfareOrder | None = None
    registry_village: str | None = None  # the latest registration's address (welfare-only)
    death: date | None = None

    @property
    def welfare_round(self) -> int | None:
        return None if self.welfare_order is None else self.welfare_order[1]

    def merged(self, other: Facts) -> Facts:
        """The union of two reports: the latest welfare record, the earliest death."""
        newer = other.welfare_order is not None and (
            self.welfare_order is None or other.welfare_order > self.welfare_order
        )
        death = self.death if other.death is None else earliest_death(self.death, other.death)
        return Facts(
            welfare=other.welfare if newer else self.welfare,
            welfare_order=other.welfare_order if newer else self.welfare_order,
            registry_village=other.registry_village if newer else self.registry_village,
            death=death,
        )


class MemberFacts(msgspec.Struct, frozen=True, kw_only=True):
    """A person partition's facts, sent to one of the person's households (key household_id)."""

    household_id: str
    survey_year: int
    citizen_id: str
    facts: Facts


# --- households ----------------------------------------------------------------------------


class MemberAttributes(msgspec.Struct, frozen=True, kw_only=True):
    age: int
    disabled: bool
    chronic_patient: bool
    bedridden: bool


class HouseholdYear(msgspec.Struct, frozen=True, kw_only=True):
    """One household in one survey year. `order` is None while only facts have arrived (a
    replay can bring a member's facts before the record that asked for them)."""

    order: RecordOrder | None = None
    village_code: str = ""
    source: Literal["bmn", "field"] = "bmn"
    house_no: str | None = None
    happiness_score: float | None = None
    deprivation: list[Dimension] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    applicable: list[int] = field(default_factory=list)
    members: dict[str, MemberAttributes] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)  # members the newest record dropped
    facts: dict[str, Facts] = field(default_factory=dict)
    sent: Sent | None = None


class HouseholdState(msgspec.Struct, frozen=True, kw_only=True):
    years: dict[int, HouseholdYear] = field(default_factory=dict)


def on_household_record(
    state: HouseholdState, record: BmnHousehold, event_id: str
) -> tuple[HouseholdState, list[Membership], list[HouseholdStatus]]:
    """A survey (or field) record: kept if it is the newest of its household and year."""
    year = record.survey_year
    old = state.years.get(year, HouseholdYear())
    order = record_order(record, event_id)
    if old.order is not None and old.order >= order:
        return state, [], []
    assessment = assess_household(record)
    roster = {m.citizen_id: m for m in record.members}
    new = HouseholdYear(
        order=order,
        village_code=record.village_code,
        source=record.source,
        house_no=record.house_no,
        happiness_score=record.happiness_score,
        deprivation=sorted_dimensions(assessment.deprivation),
        failed=assessment.failed,
        applicable=assessment.applicable,
        members={
            cid: MemberAttributes(
                age=m.age,
                disabled=m.disabled,
                chronic_patient=m.chronic_patient,
                bedridden=m.bedridden,
            )
            for cid, m in roster.items()
        },
        # Members who left stop counting for this year.
        left=[cid for cid in old.members if cid not in roster],
        # Facts of former members are kept: they are facts about people, still true if they
        # come back, and dropping them could leave a returning member without any.
        facts=old.facts,
        sent=old.sent,
    )
    new, statuses = _household_status(record.household_id, year, new)
    return (
        HouseholdState(years={**state.years, year: new}),
        _memberships(record.household_id, year, new),
        statuses,
    )


def _memberships(household_id: str, year: int, state: HouseholdYear) -> list[Membership]:
    """What the household's newest record tells each member's person partition."""
    if state.order is None:
        return []
    present = [
        Membership(
            citizen_id=cid,
            household_id=household_id,
            survey_year=year,
            order=state.order,
            present=True,
            village_code=state.village_code,
            deprivation=state.deprivation,
            failed=state.failed,
            applicable=state.applicable,
            age_band=age_band(m.age),
            disabled=m.disabled,
            chronic_patient=m.chronic_patient,
            bedridden=m.bedridden,
        )
        for cid, m in state.members.items()
    ]
    gone = [
        Membership(
            citizen_id=cid,
            household_id=household_id,
            survey_year=year,
            order=state.order,
            present=False,
            village_code=state.village_code,
        )
        for cid in state.left
    ]
    return present + gone


def resend_household(
    state: HouseholdState, household_id: str
) -> tuple[list[Membership], list[HouseholdStatus]]:
    """Everything the household's state has sent, sent again: after a worker took over its
    partition, a replayed input may find its results in the state but not yet on Kafka."""
    memberships = [
        m for year, y in state.years.items() for m in _memberships(household_id, year, y)
    ]
    sent = [y.sent for y in state.years.values() if y.sent is not None]
    return memberships, [_sent_status(HouseholdStatus, s) for s in sent]


def on_member_facts(
    state: HouseholdState, message: MemberFacts
) -> tuple[HouseholdState, list[HouseholdStatus]]:
    year = state.years.get(message.survey_year, HouseholdYear())
    known = year.facts.get(message.citizen_id)
    facts = message.facts if known is None else known.merged(message.facts)
    if facts == known:
        return state, []
    updated = replace(year, facts={**year.facts, message.citizen_id: facts})
    updated, statuses = _household_status(message.household_id, message.survey_year, updated)
    return HouseholdState(years={**state.years, message.survey_year: updated}), statuses


def _household_status(
    household_id: str, year: int, state: HouseholdYear
) -> tuple[HouseholdYear, list[HouseholdStatus]]:
    """The household's status, sent when every member's facts are in and something changed."""
    if state.order is None or any(cid not in state.facts for cid in state.members):
        return state, []
    deprivation = frozenset(state.deprivation)
    outcome = household_outcome(
        deprivation,
        [
            MemberOutcome(
                person_class=person_class(
                    deprivation, state.facts[cid].welfare, is_deceased(state.facts[cid].death, year)
                ),
                welfare=state.facts[cid].welfare,
                vulnerable=is_vulnerable(
                    attributes.age, disabled=attributes.disabled, bedridden=attributes.bedridden
                ),
            )
            for cid, attributes in state.members.items()
        ],
    )
    status = HouseholdStatus(
        household_id=household_id,
        survey_year=year,
        village_code=state.village_code,
        source=state.source,
        house_no=state.house_no,
        deprivation=state.deprivation,
        failed_indicators=state.failed,
        member_count=outcome.member_count,
        target_members=outcome.target_members,
        registered_members=outcome.registered_members,
        unregistered_members=outcome.unregistered_members,
        vulnerable_members=outcome.vulnerable_members,
        mpi_poor=bool(deprivation),
        target=outcome.target,
        nocard=outcome.nocard,
        crisis=outcome.crisis,
        priority=outcome.priority,
        happiness_score=state.happiness_score,
        version=1,
    )
    versioned = _versioned(state.sent, status)
    if versioned is None:
        return state, []
    sent, sendable = versioned
    return replace(state, sent=sent), [sendable]


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """A status as last sent: its version and its JSON without the version, which is what a new
    status is compared with, and the status again when it must be resent."""

    version: int
    content: msgspec.Raw


StatusT = TypeVar("StatusT", HouseholdStatus, PersonStatus)


def _versioned(previous: Sent | None, status: StatusT) -> tuple[Sent, StatusT] | None:
    """`status` (built with version 1) with the next version, and what to remember of it; or
    None when it says nothing new."""
    content = status.model_dump_json(exclude={"version"}).encode()
    if previous is None:
        return Sent(version=1, content=msgspec.Raw(content)), status
    if content == bytes(previous.content):
        return None
    version = previous.version + 1
    return (
        Sent(version=version, content=msgspec.Raw(content)),
        status.model_copy(update={"version": version}),
    )


def _sent_status(model: type[StatusT], sent: Sent) -> StatusT:
    """The status `sent` remembers."""
    return model.model_validate({**orjson.loads(bytes(sent.content)), "version": sent.version})


# --- persons -------------------------------------------------------------------------------


class PersonState(msgspec.Struct, frozen=True, kw_only=True):
    facts: Facts = field(default_factory=Facts)
    # Memberships by "year:household_id", each the newest word of that household.
    memberships: dict[str, Membership] = field(default_factory=dict)
    sent: dict[int, Sent] = field(default_factory=dict)


def on_membership(
    state: PersonState, message: Membership
) -> tuple[PersonState, list[PersonStatus], list[MemberFacts]]:
    key = f"{message.survey_year}:{message.household_id}"
    old = state.memberships.get(key)
    if old is not None and old.order >= message.order:
        return state, [], []
    updated = replace(state, memberships={**state.memberships, key: message})
    updated, statuses = _person_statuses(message.citizen_id, updated, {message.survey_year})
    joined = message.present and (old is None or not old.present)
    facts = [_facts_for(message, updated.facts)] if joined else []
    return updated, statuses, facts


def on_welfare(
    state: PersonState, registration: WelfareRegistration
) -> tuple[PersonState, list[PersonStatus], list[MemberFacts]]:
    reported = Facts(
        welfare=registration.status,
        welfare_order=welfare_order(registration.updated_at, registration.round),
        registry_village=registration.village_code,
    )
    return _on_facts(state, registration.citizen_id, reported)


def on_death(
    state: PersonState, event: CivilEvent
) -> tuple[PersonState, list[PersonStatus], list[MemberFacts]]:
    return _on_facts(state, event.citizen_id, Facts(death=event.date))


def _on_facts(
    state: PersonState, citizen_id: str, reported: Facts
) -> tuple[PersonState, list[PersonStatus], list[MemberFacts]]:
    facts = state.facts.merged(reported)
    if facts == state.facts:
        return state, [], []
    updated = replace(state, facts=facts)
    # Every year the person has or had a status in, and the year the welfare may place them.
    years = {m.survey_year for m in state.memberships.values()} | set(state.sent)
    welfare_year = welfare_only_year(facts.welfare, facts.welfare_round)
    if welfare_year is not None:
        years.add(welfare_year)
    updated, statuses = _person_statuses(citizen_id, updated, years)
    return updated, statuses, _facts_to_households(updated)


def resend_person(state: PersonState) -> tuple[list[PersonStatus], list[MemberFacts]]:
    """Everything the person's state has sent, sent again (see resend_household)."""
    statuses = [_sent_status(PersonStatus, sent) for sent in state.sent.values()]
    return statuses, _facts_to_households(state)


def _facts_to_households(state: PersonState) -> list[MemberFacts]:
    """The person's facts for every household that lists them."""
    return [_facts_for(m, state.facts) for m in state.memberships.values() if m.present]


def _facts_for(membership: Membership, facts: Facts) -> MemberFacts:
    return MemberFacts(
        household_id=membership.household_id,
        survey_year=membership.survey_year,
        citizen_id=membership.citizen_id,
        facts=facts,
    )


def _person_statuses(
    citizen_id: str, state: PersonState, years: set[int]
) -> tuple[PersonState, list[PersonStatus]]:
    sent = dict(state.sent)
    statuses = []
    for year in sorted(years):
        status = _person_status(citizen_id, year, state)
        versioned = None if status is None else _versioned(sent.get(year), status)
        if versioned is not None:
            sent[year], sendable = versioned
            statuses.append(sendable)
    if not statuses:
        return state, []
    return replace(state, sent=sent), statuses


def _person_status(citizen_id: str, year: int, state: PersonState) -> PersonStatus | None:
    """The person's status in a year: through their household there (the newest record if two
    households list them); else `welfare_only` where their verified registration places them;
    else `removed` once nothing does any more."""
    memberships = [m for m in state.memberships.values() if m.survey_year == year]
    present = [m for m in memberships if m.present]
    if not present:
        welfare_only = _welfare_only_status(citizen_id, year, state.facts)
        if welfare_only is not None:
            return welfare_only
        sent = state.sent.get(year)
        if sent is None:
            return None
        previous = _sent_status(PersonStatus, sent)
        return PersonStatus(
            citizen_id=citizen_id,
            survey_year=year,
            household_id=previous.household_id,
            village_code=previous.village_code,
            person_class="removed",
            deprivation=[],
            failed_indicators=[],
            applicable_indicators=[],
            welfare_status=state.facts.welfare,
            age_band=None,
            version=1,
        )
    home = max(present, key=lambda m: (m.order, m.household_id))
    deprivation = frozenset(home.deprivation)
    return PersonStatus(
        citizen_id=citizen_id,
        survey_year=year,
        household_id=home.household_id,
        village_code=home.village_code,
        person_class=person_class(
            deprivation, state.facts.welfare, is_deceased(state.facts.death, year)
        ),
        deprivation=home.deprivation,
        failed_indicators=home.failed,
        applicable_indicators=home.applicable,
        welfare_status=state.facts.welfare,
        age_band=home.age_band,
        disabled=home.disabled,
        chronic_patient=home.chronic_patient,
        bedridden=home.bedridden,
        version=1,
    )


def _welfare_only_status(citizen_id: str, year: int, facts: Facts) -> PersonStatus | None:
    """A verified registrant no household of `year` lists, placed by their registry address."""
    if (
        welfare_only_year(facts.welfare, facts.welfare_round) != year
        or facts.registry_village is None
        or is_deceased(facts.death, year)
    ):
        return None
    return PersonStatus(
        citizen_id=citizen_id,
        survey_year=year,
        household_id=None,
        village_code=facts.registry_village,
        person_class="welfare_only",
        deprivation=[],
        failed_indicators=[],
        applicable_indicators=[],
        welfare_status=facts.welfare,
        age_band=None,
        version=1,
    )
