"""Faust adapter of the matcher: agents that move records, state and messages around the pure
transitions of state.py.

At least once, with idempotent state (ARCHITECTURE.md). An agent applies each event to its table
and sends the results attached to the event: Faust publishes them before it commits the event's
offset. A worker that dies after writing a state but before its messages went out leaves inputs
that will be replayed onto a state that already holds their results, and a transition on such a
state sends nothing. So an event that may be a replay (its offset is below the partition's end
when the worker was given the partition) sends everything its keys' state has sent, again:
identical messages, which consumers recognise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, TableT, TransportT
from pydantic import BaseModel

from services.contracts.events import (
    DeadLetter,
    Envelope,
    HouseholdStatus,
    PersonStatus,
    envelope,
    text_or_base64,
)
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    CIVIL_EVENTS,
    HOUSEHOLD_STATUS,
    MATCHER_DEAD_LETTER,
    MATCHER_HOUSEHOLD_STATE,
    MATCHER_MEMBER_FACTS,
    MATCHER_MEMBERSHIPS,
    MATCHER_PERSON_STATE,
    PERSON_STATUS,
    WELFARE_REGISTRATIONS,
    TopicSpec,
)
from services.matcher.settings import MatcherSettings
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
    resend_household,
    resend_person,
)

log = logging.getLogger(__name__)

APP_ID = "tpmap-matcher"
SOURCE = "/matcher"
_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class Matcher:
    """The agents' side effects: reading and writing the tables, sending (attached) messages."""

    def __init__(
        self, app: faust.App, households: TableT[bytes, bytes], persons: TableT[bytes, bytes]
    ) -> None:
        self._topics = {
            spec.name: app.topic(spec.name, partitions=spec.partitions, **_RAW)
            for spec in (
                MATCHER_MEMBERSHIPS,
                MATCHER_MEMBER_FACTS,
                PERSON_STATUS,
                HOUSEHOLD_STATUS,
                MATCHER_DEAD_LETTER,
            )
        }
        self._households = households
        self._persons = persons
        # Per input partition: offsets below this may be replays (the log's end when assigned).
        self.replay_limits: dict[TP, int] = {}

    def may_be_replay(self, event: EventT[bytes]) -> bool:
        return event.message.offset < self.replay_limits.get(event.message.tp, 0)

    async def _send(self, spec: TopicSpec, key: str, value: bytes) -> None:
        # Attached to the current event: published before its offset is committed.
        await self._topics[spec.name].send(key=key.encode(), value=value)

    async def _event(self, spec: TopicSpec, key: str, data: BaseModel) -> None:
        await self._send(
            spec,
            key,
            envelope(spec.require_event_type(), SOURCE, data, subject=key)
            .model_dump_json()
            .encode(),
        )

    async def _send_household_results(
        self, memberships: list[Membership], statuses: list[HouseholdStatus]
    ) -> None:
        for membership in memberships:
            await self._send(
                MATCHER_MEMBERSHIPS, membership.citizen_id, membership.model_dump_json().encode()
            )
        for status in statuses:
            await self._event(
                HOUSEHOLD_STATUS, f"{status.household_id}:{status.survey_year}", status
            )

    async def _send_person_results(
        self, statuses: list[PersonStatus], facts: list[MemberFacts]
    ) -> None:
        for status in statuses:
            await self._event(PERSON_STATUS, f"{status.citizen_id}:{status.survey_year}", status)
        for fact in facts:
            await self._send(
                MATCHER_MEMBER_FACTS, fact.household_id, fact.model_dump_json().encode()
            )

    async def household_event(self, event: EventT[bytes]) -> None:
        if event.message.topic == BMN_HOUSEHOLDS.name:
            record = Envelope[BmnHousehold].model_validate_json(event.value)
            key = record.data.household_id
            loaded = self._load_household(key)
            state, memberships, statuses = on_household_record(loaded, record.data, record.id)
        else:
            facts = MemberFacts.model_validate_json(event.value)
            key = facts.household_id
            loaded = self._load_household(key)
            state, statuses = on_member_facts(loaded, facts)
            memberships = []
        # Transitions hand back the very state they were given when nothing changed (a
        # duplicate, a stale record): no write, no changelog message.
        if state is not loaded:
            self._households[key.encode()] = state.model_dump_json().encode()
        if self.may_be_replay(event):
            memberships, statuses = resend_household(state, key)
        await self._send_household_results(memberships, statuses)

    async def person_event(self, event: EventT[bytes]) -> None:
        topic = event.message.topic
        if topic == WELFARE_REGISTRATIONS.name:
            registration = Envelope[WelfareRegistration].model_validate_json(event.value).data
            key = registration.citizen_id
            loaded = self._load_person(key)
            state, statuses, facts = on_welfare(loaded, registration)
        elif topic == CIVIL_EVENTS.name:
            death = Envelope[CivilEvent].model_validate_json(event.value).data
            key = death.citizen_id
            loaded = self._load_person(key)
            state, statuses, facts = on_death(loaded, death)
        else:
            membership = Membership.model_validate_json(event.value)
            key = membership.citizen_id
            loaded = self._load_person(key)
            state, statuses, facts = on_membership(loaded, membership)
        if state is not loaded:
            self._persons[key.encode()] = state.model_dump_json().encode()
        if self.may_be_replay(event):
            statuses, facts = resend_person(state)
        await self._send_person_results(statuses, facts)

    def _load_household(self, key: str) -> HouseholdState:
        stored = self._households.get(key.encode())
        return HouseholdState() if stored is None else HouseholdState.model_validate_json(stored)

    def _load_person(self, key: str) -> PersonState:
        stored = self._persons.get(key.encode())
        return PersonState() if stored is None else PersonState.model_validate_json(stored)

    async def dead_letter(self, event: EventT[bytes], error: Exception) -> None:
        message = event.message
        text, encoding = text_or_base64(bytes(message.value or b""))
        letter = DeadLetter(
            consumer=APP_ID,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=bytes(message.key).decode("utf-8", errors="replace") if message.key else None,
            value=text,
            value_encoding=encoding,
            error=f"{type(error).__name__}: {error}"[:2000],
            failed_at=datetime.now(UTC),
        )
        log.warning(
            "dead letter",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "error": letter.error,
            },
        )
        await self._event(MATCHER_DEAD_LETTER, letter.key or "", letter)


class _RewindingConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, also rewinding input partitions that have no committed offset.

    While a new assignment is recovering, Faust's fetcher reads the paused input partitions too
    and drops what it read, so their positions move on. After recovery Faust seeks every
    partition back to its committed offset, but aiokafka seeks only to committed offsets above 0:
    a partition nobody has committed yet kept its advanced position, and the records read
    during recovery were never processed (seen with two workers and after a SIGKILL).
    """

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        uncommitted = {
            tp: 0
            for tp, offset in committed.items()
            if not offset and self.app.topics.acks_enabled_for(tp.topic)
        }
        if uncommitted:
            await self.seek_wait(uncommitted)
        return committed


class _Transport(faust_aiokafka.Transport):
    Consumer = _RewindingConsumer


class _App(faust.App):
    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


def create_app(settings: MatcherSettings) -> faust.App:
    app = _App(
        APP_ID,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store=settings.store,
        datadir=settings.data_dir,
        processing_guarantee="at_least_once",
        topic_partitions=BMN_HOUSEHOLDS.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 3,
        web_enabled=False,
        # Fewer, larger produce requests: each event sends several small messages.
        producer_linger_ms=settings.producer_linger_ms,
        key_serializer="raw",
        value_serializer="raw",
    )
    table_options: dict[str, Any] = {
        "partitions": BMN_HOUSEHOLDS.partitions,
        "key_type": bytes,
        "value_type": bytes,  # serialized with the app's raw serializers
    }
    # Changelogs are registry topics, made before any worker starts: Faust creating its own on
    # first use races with its first writes on a new cluster.
    households = app.Table(
        "households",
        changelog_topic=app.topic(MATCHER_HOUSEHOLD_STATE.name, **_RAW),
        **table_options,
    )
    persons = app.Table(
        "persons", changelog_topic=app.topic(MATCHER_PERSON_STATE.name, **_RAW), **table_options
    )
    matcher = Matcher(app, households, persons)

    async def remember_replay_limits(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0]  # sent as on_partitions_assigned.send(assigned)
        matcher.replay_limits.update(await app.consumer.highwaters(*assigned))

    app.on_partitions_assigned.connect(remember_replay_limits)  # type: ignore[arg-type]  # Faust's stub wants a positional-only sender

    household_inputs = app.topic(BMN_HOUSEHOLDS.name, MATCHER_MEMBER_FACTS.name, **_RAW)
    person_inputs = app.topic(
        WELFARE_REGISTRATIONS.name, CIVIL_EVENTS.name, MATCHER_MEMBERSHIPS.name, **_RAW
    )

    async def consume(stream: Any, handle: Any) -> None:
        async for event in stream.events():
            try:
                await handle(event)
            except (
                Exception
            ) as error:  # an event that cannot be processed is kept, not retried forever
                await matcher.dead_letter(event, error)

    @app.agent(household_inputs, concurrency=1)
    async def match_households(stream: Any) -> None:
        await consume(stream, matcher.household_event)

    @app.agent(person_inputs, concurrency=1)
    async def match_persons(stream: Any) -> None:
        await consume(stream, matcher.person_event)

    return app
