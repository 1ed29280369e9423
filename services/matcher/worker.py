"""Faust adapter of the matcher: agents that move records, state and messages around the pure
transitions of state.py.

At least once, with idempotent state (ARCHITECTURE.md): each agent takes a batch of events,
applies them to the state in memory, sends every resulting message and waits for Kafka's
acknowledgement, and only then writes the new state to its table; Faust commits the batch's
offsets after that. A crash at any point replays inputs onto a state that is never ahead of what
was sent, and the order-independent merges make the replay send identical messages or none.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import faust
from faust.streams import _current_event
from faust.types import EventT, TableT
from pydantic import BaseModel

from services.contracts.events import DeadLetter, Envelope, envelope
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    CIVIL_EVENTS,
    HOUSEHOLD_STATUS,
    MATCHER_DEAD_LETTER,
    MATCHER_MEMBER_FACTS,
    MATCHER_MEMBERSHIPS,
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
)

log = logging.getLogger(__name__)

APP_ID = "tpmap-matcher"
SOURCE = "/matcher"
StateT = TypeVar("StateT", HouseholdState, PersonState)
_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class Outbox:
    """The messages one batch sends, then waits for."""

    def __init__(self, topics: dict[str, faust.TopicT]) -> None:
        self._topics = topics
        self._pending: list[Awaitable[Any]] = []

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> None:
        # force=True: publish now rather than when the batch's offsets are committed, so the
        # batch can wait for the acknowledgement before it writes its state.
        self._pending.append(
            await self._topics[spec.name].send(key=key.encode(), value=value, force=True)
        )

    async def event(self, spec: TopicSpec, key: str, data: BaseModel) -> None:
        await self.send(
            spec,
            key,
            envelope(spec.require_event_type(), SOURCE, data, subject=key)
            .model_dump_json()
            .encode(),
        )

    async def dead_letter(self, event: EventT[bytes], error: Exception) -> None:
        message = event.message
        value = bytes(message.value or b"")
        try:
            text, encoding = value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(value).decode("ascii"), "base64"
        letter = DeadLetter(
            consumer=APP_ID,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=bytes(message.key).decode("utf-8", errors="replace") if message.key else None,
            value=text,
            value_encoding="utf-8" if encoding == "utf-8" else "base64",
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
        await self.event(MATCHER_DEAD_LETTER, letter.key or "", letter)

    async def wait(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


class StateCache(Generic[StateT]):
    """A batch's view of one table: reads through, writes only at the end."""

    def __init__(self, table: TableT[bytes, bytes], model: type[StateT]) -> None:
        self._table = table
        self._model: type[StateT] = model
        self._changed: dict[str, tuple[StateT, EventT[bytes]]] = {}

    def get(self, key: str) -> StateT:
        if key in self._changed:
            return self._changed[key][0]
        stored = self._table.get(key.encode())
        return self._model() if stored is None else self._model.model_validate_json(stored)

    def put(self, key: str, state: StateT, event: EventT[bytes]) -> None:
        self._changed[key] = (state, event)

    def write(self) -> None:
        for key, (state, event) in self._changed.items():
            # Faust's stores file a key under the partition of the "current event"; in a batch
            # that is the batch's last event, so make it the event that touched this key (same
            # key, same partition). Faust has no public call for this.
            _current_event.set(weakref.ref(event))
            self._table[key.encode()] = state.model_dump_json().encode()
        self._changed.clear()


HouseholdCache = StateCache[HouseholdState]
PersonCache = StateCache[PersonState]


async def _household_event(
    event: EventT[bytes], households: HouseholdCache, outbox: Outbox
) -> None:
    if event.message.topic == BMN_HOUSEHOLDS.name:
        record = Envelope[BmnHousehold].model_validate_json(event.value)
        key = record.data.household_id
        state, memberships, statuses = on_household_record(
            households.get(key), record.data, record.id
        )
    else:
        facts = MemberFacts.model_validate_json(event.value)
        key = facts.household_id
        state, statuses = on_member_facts(households.get(key), facts)
        memberships = []
    households.put(key, state, event)
    for membership in memberships:
        await outbox.send(
            MATCHER_MEMBERSHIPS, membership.citizen_id, membership.model_dump_json().encode()
        )
    for status in statuses:
        await outbox.event(HOUSEHOLD_STATUS, f"{status.household_id}:{status.survey_year}", status)


async def _person_event(event: EventT[bytes], persons: PersonCache, outbox: Outbox) -> None:
    topic = event.message.topic
    if topic == WELFARE_REGISTRATIONS.name:
        registration = Envelope[WelfareRegistration].model_validate_json(event.value).data
        key = registration.citizen_id
        state, statuses, facts = on_welfare(persons.get(key), registration)
    elif topic == CIVIL_EVENTS.name:
        death = Envelope[CivilEvent].model_validate_json(event.value).data
        key = death.citizen_id
        state, statuses, facts = on_death(persons.get(key), death)
    else:
        membership = Membership.model_validate_json(event.value)
        key = membership.citizen_id
        state, statuses, facts = on_membership(persons.get(key), membership)
    persons.put(key, state, event)
    for status in statuses:
        await outbox.event(PERSON_STATUS, f"{status.citizen_id}:{status.survey_year}", status)
    for fact in facts:
        await outbox.send(MATCHER_MEMBER_FACTS, fact.household_id, fact.model_dump_json().encode())


async def _process(
    events: Sequence[EventT[bytes]],
    cache: StateCache[StateT],
    outbox: Outbox,
    handle: Callable[[EventT[bytes], StateCache[StateT], Outbox], Awaitable[None]],
) -> None:
    """One batch: apply every event, send and wait, then write the state."""
    for event in events:
        try:
            await handle(event, cache, outbox)
        except (
            Exception
        ) as error:  # any event that cannot be processed is kept, not retried forever
            await outbox.dead_letter(event, error)
    await outbox.wait()
    cache.write()


def create_app(settings: MatcherSettings) -> faust.App:
    app = faust.App(
        APP_ID,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store=settings.store,
        datadir=settings.data_dir,
        processing_guarantee="at_least_once",
        topic_partitions=BMN_HOUSEHOLDS.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    topics = {
        spec.name: app.topic(spec.name, partitions=spec.partitions, **_RAW)
        for spec in (
            MATCHER_MEMBERSHIPS,
            MATCHER_MEMBER_FACTS,
            PERSON_STATUS,
            HOUSEHOLD_STATUS,
            MATCHER_DEAD_LETTER,
        )
    }
    table_options: dict[str, Any] = {
        "partitions": BMN_HOUSEHOLDS.partitions,
        # The changelog partition follows the key, as the input topics' partitions do.
        "use_partitioner": True,
        "key_type": bytes,
        "value_type": bytes,  # serialized with the app's raw serializers
    }
    households = app.Table("households", **table_options)
    persons = app.Table("persons", **table_options)

    household_inputs = app.topic(BMN_HOUSEHOLDS.name, MATCHER_MEMBER_FACTS.name, **_RAW)
    person_inputs = app.topic(
        WELFARE_REGISTRATIONS.name, CIVIL_EVENTS.name, MATCHER_MEMBERSHIPS.name, **_RAW
    )

    # Typed as StreamT by Faust; the agents get a Stream, which has take_events.
    @app.agent(household_inputs, concurrency=1)
    async def match_households(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            await _process(
                events, StateCache(households, HouseholdState), Outbox(topics), _household_event
            )

    @app.agent(person_inputs, concurrency=1)
    async def match_persons(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            await _process(events, StateCache(persons, PersonState), Outbox(topics), _person_event)

    return app
