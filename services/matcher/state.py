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
"""

from __future__ import annotations

from datetime import date
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- messages between the two kinds of partition -------------------------------------------


class Membership(_Model):
    """A household record's word to one member's person partition (key citizen_id)."""

    citizen_id: str
    household_id: str
    survey_year: int
    order: RecordOrder
    present: bool
    village_code: str
    deprivation: list[Dimension] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list)
    applicable: list[int] = Field(default_factory=list)
    age_band: AgeBand | None = None
    disabled: bool = False
    chronic_patient: bool = False
    bedridden: bool = False


class Facts(_Model):
    """What a person partition knows of a person that their households need."""

    welfare: WelfareStatus | None = None
    welfare_order: WelfareOrder | None = None
    registry_village: str | None = Field(
        default=None, description="The latest registration's address, where welfare-only count"
    )
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


class MemberFacts(_Model):
    """A person partition's facts, sent to one of the person's households (key household_id)."""

    household_id: str
    survey_year: int
    citizen_id: str
    facts: Facts


# --- households ----------------------------------------------------------------------------


class MemberAttributes(_Model):
    age: int
    disabled: bool
    chronic_patient: bool
    bedridden: bool


class HouseholdYear(_Model):
    """One household in one survey year. `order` is None while only facts have arrived (a
    replay can bring a member's facts before the record that asked for them)."""

    order: RecordOrder | None = None
    village_code: str = ""
    source: Literal["bmn", "field"] = "bmn"
    house_no: str | None = None
    happiness_score: float | None = None
    deprivation: list[Dimension] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list)
    applicable: list[int] = Field(default_factory=list)
    members: dict[str, MemberAttributes] = Field(default_factory=dict)
    left: list[str] = Field(default_factory=list, description="Members the newest record dropped")
    facts: dict[str, Facts] = Field(default_factory=dict)
    sent: HouseholdStatus | None = None


class HouseholdState(_Model):
    years: dict[int, HouseholdYear] = Field(default_factory=dict)


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
    return memberships, [y.sent for y in state.years.values() if y.sent is not None]


def on_member_facts(
    state: HouseholdState, message: MemberFacts
) -> tuple[HouseholdState, list[HouseholdStatus]]:
    year = state.years.get(message.survey_year, HouseholdYear())
    known = year.facts.get(message.citizen_id)
    facts = message.facts if known is None else known.merged(message.facts)
    if facts == known:
        return state, []
    updated = year.model_copy(update={"facts": {**year.facts, message.citizen_id: facts}})
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
    return state.model_copy(update={"sent": versioned}), [versioned]


StatusT = TypeVar("StatusT", HouseholdStatus, PersonStatus)


def _versioned(previous: StatusT | None, status: StatusT) -> StatusT | None:
    """`status` (built with version 1) with the next version, or None when it says nothing new."""
    if previous is None:
        return status
    # Field by field rather than through a copy with version 1: this runs for every status of
    # every transition, and pydantic's model_copy was a fifth of the rules' time.
    now, before = status.__dict__, previous.__dict__
    if all(now[name] == before[name] for name in now if name != "version"):
        return None
    return status.model_copy(update={"version": previous.version + 1})


# --- persons -------------------------------------------------------------------------------


class PersonState(_Model):
    facts: Facts = Facts()
    # Memberships by "year:household_id", each the newest word of that household.
    memberships: dict[str, Membership] = Field(default_factory=dict)
    sent: dict[int, PersonStatus] = Field(default_factory=dict)


def on_membership(
    state: PersonState, message: Membership
) -> tuple[PersonState, list[PersonStatus], list[MemberFacts]]:
    key = f"{message.survey_year}:{message.household_id}"
    old = state.memberships.get(key)
    if old is not None and old.order >= message.order:
        return state, [], []
    updated = state.model_copy(update={"memberships": {**state.memberships, key: message}})
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
    updated = state.model_copy(update={"facts": facts})
    # Every year the person has or had a status in, and the year the welfare may place them.
    years = {m.survey_year for m in state.memberships.values()} | set(state.sent)
    welfare_year = welfare_only_year(facts.welfare, facts.welfare_round)
    if welfare_year is not None:
        years.add(welfare_year)
    updated, statuses = _person_statuses(citizen_id, updated, years)
    return updated, statuses, _facts_to_households(updated)


def resend_person(state: PersonState) -> tuple[list[PersonStatus], list[MemberFacts]]:
    """Everything the person's state has sent, sent again (see resend_household)."""
    return list(state.sent.values()), _facts_to_households(state)


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
            sent[year] = versioned
            statuses.append(versioned)
    return state.model_copy(update={"sent": sent}), statuses


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
        previous = state.sent.get(year)
        if previous is None:
            return None
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
