"""Faust adapter of the matcher: two agents that take input events in batches and move records,
state and messages around the pure transitions of state.py.

At least once, with idempotent state (ARCHITECTURE.md). An agent applies a batch of events to its
table (each changed key written once), sends what the batch produced and waits until Kafka has
acknowledged it; only then are the events acknowledged, and Faust flushes the tables' changelogs
before it commits their offsets. A worker that dies after writing a state but before its
messages went out leaves inputs that will be replayed onto a state that already holds their
results, and a transition on such a state sends nothing. So an event that may be a replay (its
offset is below the partition's end when the worker was given the partition) sends everything
its keys' state has sent, again: identical messages, which consumers recognise.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Generic, TypeVar, cast

import faust
import msgspec
import orjson
from faust.streams import _current_event  # Faust offers no public setter
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, StoreT, TableT, TransportT
from pydantic import BaseModel

from services.contracts.events import (
    DeadLetter,
    Envelope,
    PersonStatus,
    envelope_json,
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
from services.matcher.liveness import Stall, StallWatch
from services.matcher.outbox import Outbox, partition_for
from services.matcher.sender import Record, RecordSender
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
EXIT_BATCH_FAILED = 70  # EX_SOFTWARE
EXIT_STALLED = 75  # EX_TEMPFAIL: the same worker started again will do
SOURCE = "/matcher"
_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}
_JSON = msgspec.json.Encoder()
_MEMBERSHIPS = msgspec.json.Decoder(list[Membership])
_FACTS = msgspec.json.Decoder(list[MemberFacts])
# Parametrised once: pydantic looks a generic's parametrisation up on every subscription.
_SURVEY = Envelope[BmnHousehold]
_WELFARE = Envelope[WelfareRegistration]
_DEATH = Envelope[CivilEvent]

StateT = TypeVar("StateT", HouseholdState, PersonState)
ItemT = TypeVar("ItemT", Membership, MemberFacts)


class UnreadableStateError(RuntimeError):
    """A stored state this code cannot read: not the input's fault, so the batch fails and the
    worker exits (code 70) instead of dead-lettering every input of that key."""


class _Keys(Generic[StateT]):
    """One partition's states during a batch: each key read once, written once if it changed."""

    def __init__(self, table: TableT[bytes, bytes], model: type[StateT], partition: int) -> None:
        self._table = table
        self._model: type[StateT] = model
        self._decoder: msgspec.json.Decoder[StateT] = msgspec.json.Decoder(model)
        self._partition = partition
        self._loaded: dict[str, StateT] = {}
        self._current: dict[str, StateT] = {}

    def get(self, key: str) -> StateT:
        if key not in self._current:
            stored = self._table.data.get(key.encode())  # the store: the table's layers cost more
            try:
                state = self._model() if stored is None else self._decoder.decode(stored)
            except msgspec.DecodeError as error:
                # The key is a citizen ID in the persons table: not in the message.
                raise UnreadableStateError(
                    f"a stored {self._model.__name__} in partition {self._partition} "
                    f"is unreadable: {error}"
                ) from None
            self._loaded[key] = self._current[key] = state
        return self._current[key]

    def put(self, key: str, state: StateT) -> None:
        self._current[key] = state

    def write_changed(self, changelog: list[_ChangelogEntry]) -> None:
        """Writes the changed states to the local store and adds them to `changelog`.

        Transitions hand back the very state they were given when nothing changed (a duplicate,
        a stale record): no write, no changelog message. The store is written directly and the
        changelog sent with the batch's results (`Matcher._publish`), not through the table's
        `__setitem__`: that queues each changelog message in Faust's producer buffer, which
        drains one message per wait, and took more time than the rules themselves.
        """
        topic = self._table.changelog_topic.get_topic_name()
        for key, state in self._current.items():
            if state is not self._loaded[key]:
                raw_key, value = key.encode(), _JSON.encode(state)
                self._table.data[raw_key] = value
                changelog.append(
                    _ChangelogEntry(self._table, topic, self._partition, raw_key, value)
                )


@dataclass(frozen=True, slots=True)
class _ChangelogEntry:
    table: TableT[bytes, bytes]
    topic: str
    partition: int
    key: bytes
    value: bytes


def _by_partition(events: list[EventT[bytes]]) -> Iterator[list[EventT[bytes]]]:
    """The batch's events per partition number, each in its arrival order."""
    ordered = sorted(events, key=lambda e: e.message.partition)  # stable: keeps arrival order
    for _, group in groupby(ordered, key=lambda e: e.message.partition):
        yield list(group)


def _batched(
    message: Any,
    value: bytes,
    outbox: Outbox,
    items: msgspec.json.Decoder[list[ItemT]],
    item: type[ItemT],
) -> list[ItemT]:
    """A batched internal message's items: read at once, or where that fails one by one, every
    unreadable item a dead letter of its own."""
    try:
        return items.decode(value)
    except msgspec.DecodeError:
        pass
    try:
        raw_items = orjson.loads(value)
        if not isinstance(raw_items, list):
            raise TypeError(f"expected a JSON array, got {type(raw_items).__name__}")
    except (ValueError, TypeError) as error:  # not a JSON array: nothing in it is readable
        outbox.dead_letters.append(_dead_letter(message, value, ValueError(str(error))))
        return []
    readable = []
    for raw_item in raw_items:
        try:
            readable.append(msgspec.convert(raw_item, item))
        except msgspec.ValidationError as error:
            outbox.dead_letters.append(_dead_letter(message, orjson.dumps(raw_item), error))
    return readable


class Matcher:
    """The agents' side effects: reading and writing the tables, sending the batches' results."""

    def __init__(
        self,
        households: TableT[bytes, bytes],
        persons: TableT[bytes, bytes],
        partitions: int,
        sender: RecordSender,
    ) -> None:
        self._sender = sender
        self._households = households
        self._persons = persons
        self._partitions = partitions
        # Per input partition: offsets below this may be replays (the log's end when assigned).
        self.replay_limits: dict[TP, int] = {}

    def may_be_replay(self, event: EventT[bytes]) -> bool:
        return event.message.offset < self.replay_limits.get(event.message.tp, 0)

    async def household_batch(self, events: list[EventT[bytes]]) -> None:
        outbox = Outbox(self._partitions)
        changelog: list[_ChangelogEntry] = []
        for partition_events in _by_partition(events):
            _make_current(partition_events[0])
            keys = _Keys(self._households, HouseholdState, partition_events[0].message.partition)
            for event in partition_events:
                touched = self._apply_household_event(event, keys, outbox)
                if self.may_be_replay(event):
                    for key in touched:
                        outbox.add_household_results(*resend_household(keys.get(key), key))
            keys.write_changed(changelog)
        await self._publish(outbox, changelog)

    def _apply_household_event(
        self, event: EventT[bytes], keys: _Keys[HouseholdState], outbox: Outbox
    ) -> list[str]:
        message = event.message
        value = bytes(message.value or b"")
        if message.topic == BMN_HOUSEHOLDS.name:
            try:
                record = _SURVEY.model_validate_json(value)
                key = record.data.household_id
                state, memberships, statuses = on_household_record(
                    keys.get(key), record.data, record.id
                )
            except ValueError as error:
                outbox.dead_letters.append(_dead_letter(message, value, error))
                return []
            keys.put(key, state)
            outbox.add_household_results(memberships, statuses)
            return [key]
        touched = []
        for facts in _batched(message, value, outbox, _FACTS, MemberFacts):
            try:
                state, statuses = on_member_facts(keys.get(facts.household_id), facts)
            except ValueError as error:
                raw = _JSON.encode(facts)
                outbox.dead_letters.append(_dead_letter(message, raw, error))
                continue
            keys.put(facts.household_id, state)
            outbox.add_household_results([], statuses)
            touched.append(facts.household_id)
        return touched

    async def person_batch(self, events: list[EventT[bytes]]) -> None:
        outbox = Outbox(self._partitions)
        changelog: list[_ChangelogEntry] = []
        for partition_events in _by_partition(events):
            _make_current(partition_events[0])
            keys = _Keys(self._persons, PersonState, partition_events[0].message.partition)
            for event in partition_events:
                touched = self._apply_person_event(event, keys, outbox)
                if self.may_be_replay(event):
                    for key in touched:
                        outbox.add_person_results(*resend_person(keys.get(key)))
            keys.write_changed(changelog)
        await self._publish(outbox, changelog)

    def _apply_person_event(
        self, event: EventT[bytes], keys: _Keys[PersonState], outbox: Outbox
    ) -> list[str]:
        message = event.message
        value = bytes(message.value or b"")
        touched = []
        for item in _person_inputs(message, value, outbox):
            try:
                key, (state, statuses, facts) = _person_transition(item, keys)
            except ValueError as error:
                raw = _JSON.encode(item) if isinstance(item, Membership) else value
                outbox.dead_letters.append(_dead_letter(message, raw, error))
                continue
            keys.put(key, state)
            outbox.add_person_results(statuses, facts)
            touched.append(key)
        return touched

    async def _publish(self, outbox: Outbox, changelog: list[_ChangelogEntry]) -> None:
        """Send the batch's changed states and results and wait until Kafka has them all."""
        records = [Record(e.topic, e.partition, e.key, e.value) for e in changelog]

        def event(spec: TopicSpec, key: str, data: BaseModel) -> Record:
            value = envelope_json(spec.require_event_type(), SOURCE, data, subject=key)
            return Record(spec.name, partition_for(key, spec.partitions), key.encode(), value)

        records += [event(PERSON_STATUS, k, s) for k, s in outbox.person_statuses.items()]
        records += [event(HOUSEHOLD_STATUS, k, s) for k, s in outbox.household_statuses.items()]
        records += [
            Record(MATCHER_MEMBERSHIPS.name, partition, None, _JSON.encode(items))
            for partition, items in outbox.membership_messages()
        ]
        records += [
            Record(MATCHER_MEMBER_FACTS.name, partition, None, _JSON.encode(items))
            for partition, items in outbox.fact_messages()
        ]
        for letter in outbox.dead_letters:
            log.warning(
                "dead letter",
                extra={
                    "topic": letter.topic,
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "error": letter.error,
                },
            )
            records.append(event(MATCHER_DEAD_LETTER, letter.key or "", letter))
        last_offsets = await self._sender.send(records)
        _persist_changelog_offsets(changelog, last_offsets)


def _person_inputs(
    message: Any, value: bytes, outbox: Outbox
) -> Sequence[Membership | WelfareRegistration | CivilEvent]:
    try:
        if message.topic == WELFARE_REGISTRATIONS.name:
            return [_WELFARE.model_validate_json(value).data]
        if message.topic == CIVIL_EVENTS.name:
            return [_DEATH.model_validate_json(value).data]
    except ValueError as error:
        outbox.dead_letters.append(_dead_letter(message, value, error))
        return []
    return _batched(message, value, outbox, _MEMBERSHIPS, Membership)


def _person_transition(
    item: Membership | WelfareRegistration | CivilEvent, keys: _Keys[PersonState]
) -> tuple[str, tuple[PersonState, list[PersonStatus], list[MemberFacts]]]:
    key = item.citizen_id
    if isinstance(item, WelfareRegistration):
        return key, on_welfare(keys.get(key), item)
    if isinstance(item, CivilEvent):
        return key, on_death(keys.get(key), item)
    return key, on_membership(keys.get(key), item)


def _persist_changelog_offsets(
    changelog: list[_ChangelogEntry], last_offsets: Mapping[tuple[str, int], int]
) -> None:
    """Tells each table's store how far its changelog is already in it (what Faust's own
    changelog callback does), so that recovery after a restart reads only what came later."""
    tables = {(e.topic, e.partition): e.table for e in changelog}
    for (topic, partition), table in tables.items():
        store = cast(StoreT[bytes, bytes], table.data)
        store.set_persisted_offset(TP(topic, partition), last_offsets[topic, partition])


def _make_current(event: EventT[bytes]) -> None:
    """Faust's tables read and write the partition of the current event, a context variable of
    the agent's task; a batch has no current event of its own, so each partition's events are
    handled as its first. Only the context variable is set: the stream's `current_event`
    attribute belongs to its drainer, which reads it to pair each taken value with its event."""
    _current_event.set(weakref.ref(event))


def _dead_letter(message: Any, value: bytes, error: Exception) -> DeadLetter:
    text, encoding = text_or_base64(value)
    return DeadLetter(
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


class MatcherConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, also rewinding input partitions that have no committed offset, and
    reading no input partition at the end of a rebalance before Faust resumes its flow.

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

    # Input partitions resumed during a rebalance and held back: (generation, partitions).
    _held: tuple[int, frozenset[TP]] | None = None

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        """Input partitions resumed during a rebalance wait for `resume_flow`.

        At the end of a rebalance Faust resumes the input partitions, seeks them to their
        committed offsets, and only then resumes flow control, which empties the streams'
        queues; the consumer's flow already runs (it was resumed to read the changelogs). The
        events fetched in between went with the queues, unprocessed, but counted as read: a
        later fetch dropped them, and a commit passed over a single such offset (Faust's check
        for a hole above the committed offset is off by one). Seen with two workers: one input
        event lost at the rebalance. Held back until the flow resumes, after the queues were
        emptied, these partitions are read from their committed offsets.
        """
        resumed = set(tps)
        if self.app.rebalancing:
            inputs = frozenset(tp for tp in resumed if not self._is_changelog_tp(tp))
            if inputs:
                self._held = (self.app.consumer_generation_id, inputs)
                resumed -= inputs
        super().resume_partitions(resumed)

    def resume_flow(self) -> None:
        super().resume_flow()
        held, self._held = self._held, None
        # Held in an earlier generation: the current one's recovery resumes its own partitions.
        if held is not None and held[0] == self.app.consumer_generation_id:
            super().resume_partitions(held[1])

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        """Fetches from a copy of the partitions Faust may deliver, not from its live set.

        aiokafka reads the set again each time a fetch in flight wakes up, and takes an empty
        one to mean every partition. Faust empties it when a table's recovery ends (it pauses
        the changelogs), while a fetch started during the recovery may still wait; the input
        partitions are not delivered again until the flow resumes. That fetch then drained the
        input partitions, even right after the seek to their committed offsets, and Faust dropped
        what it drained: their positions had moved past records never processed. Seen as a
        restarted worker that restored its tables from the changelogs and then took no input
        (the stall watch's dump: every input partition fetched, nothing arriving).
        """
        partitions = None if active_partitions is None else set(active_partitions)
        return await super()._getmany(partitions, timeout)

    def waiting(self, topics: frozenset[str], ends_when_assigned: Mapping[TP, int]) -> int:
        """Records on the assigned partitions of `topics` above their committed offsets, by the
        latest end offsets fetched (or read when the partitions were assigned)."""
        total = 0
        for tp in self.assignment():
            if tp.topic in topics:
                try:
                    fetched_end = self.highwater(tp) or 0
                except AssertionError:  # aiokafka's: revoked since assignment() answered
                    continue
                end = max(fetched_end, ends_when_assigned.get(tp, 0))
                total += max(0, end - (self._committed_offset.get(tp) or 0))
        return total

    def fetch_state(self) -> dict[str, Any]:
        """Which partitions the fetcher reads, and what keeps the others back (Faust's own
        bookkeeping): for an operator looking at a worker that seems stuck."""

        def by_topic(tps: Iterable[TP] | None) -> dict[str, list[int]]:
            found: dict[str, list[int]] = {}
            for tp in sorted(tps or ()):
                found.setdefault(tp.topic, []).append(tp.partition)
            return found

        return {
            "generation": self.app.consumer_generation_id,
            "rebalancing": self.app.rebalancing,
            "flow_active": self.flow_active,
            "fetched": by_topic(self._active_partitions),
            "paused": by_topic(self._paused_partitions),
            "buffer_full": by_topic(self._buffered_partitions),
            "held_until_flow_resumes": by_topic(self._held[1] if self._held else None),
        }


class _Transport(faust_aiokafka.Transport):
    Consumer = MatcherConsumer


class _App(faust.App):
    sender: RecordSender

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        await super().on_stop()
        await self.sender.stop()


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
        key_serializer="raw",
        value_serializer="raw",
        stream_buffer_maxsize=2 * settings.batch_size,
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
    app.sender = RecordSender(settings.kafka_bootstrap_servers, settings.producer_linger_ms)
    matcher = Matcher(households, persons, BMN_HOUSEHOLDS.partitions, app.sender)

    async def remember_replay_limits(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0]  # sent as on_partitions_assigned.send(assigned)
        matcher.replay_limits.update(await app.consumer.highwaters(*assigned))

    app.on_partitions_assigned.connect(remember_replay_limits)  # type: ignore[arg-type]  # Faust's stub wants a positional-only sender

    household_topics = (BMN_HOUSEHOLDS.name, MATCHER_MEMBER_FACTS.name)
    person_topics = (WELFARE_REGISTRATIONS.name, CIVIL_EVENTS.name, MATCHER_MEMBERSHIPS.name)
    inputs = {"households": frozenset(household_topics), "persons": frozenset(person_topics)}
    watch = StallWatch(settings.stall_seconds, list(inputs), time.monotonic())

    async def consume(stream: Any, handle: Any, agent: str) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            try:
                await handle(events)
            except Exception:
                # Faust acknowledges a taken batch even when its handling fails (take_events
                # acks in a finally). Exit before that can be committed: the batch is then
                # processed again by whichever worker takes its partitions.
                log.critical("a batch failed; exiting without committing it", exc_info=True)
                logging.shutdown()
                os._exit(EXIT_BATCH_FAILED)
            watch.batch_done(agent, time.monotonic())

    @app.agent(app.topic(*household_topics, **_RAW), concurrency=1)
    async def match_households(stream: Any) -> None:
        await consume(stream, matcher.household_batch, "households")

    @app.agent(app.topic(*person_topics, **_RAW), concurrency=1)
    async def match_persons(stream: Any) -> None:
        await consume(stream, matcher.person_batch, "persons")

    async def exit_when_stalled() -> None:
        consumer = cast(MatcherConsumer, app.consumer)
        waiting = {
            agent: consumer.waiting(topics, matcher.replay_limits)
            for agent, topics in inputs.items()
        }
        stall = watch.check(waiting, app.rebalancing or app.in_recovery, time.monotonic())
        if stall is not None:
            _exit_stalled(stall, consumer)

    if settings.stall_seconds:
        app.timer(interval=min(settings.stall_seconds / 4, 10.0))(exit_when_stalled)

    return app


def _exit_stalled(stall: Stall, consumer: MatcherConsumer) -> None:
    """Says what the stalled worker was doing, for whoever finds out why, and exits."""
    log.critical(
        f"the {stall.agent} agent finished no batch in {stall.quiet_seconds:.0f} s with "
        f"{stall.waiting} records waiting; exiting for the supervisor to start the worker again",
        extra={**consumer.fetch_state(), "tasks": task_waits()},
    )
    logging.shutdown()
    os._exit(EXIT_STALLED)


def task_waits() -> dict[str, list[str]]:
    """Where each asyncio task waits: the code location of every coroutine in its chain of
    awaits, outermost first (a task's own stack shows only the outermost). Locations only: the
    frames' local variables can hold citizen IDs."""
    found = {}
    for task in asyncio.all_tasks():
        lines = []
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            awaited = _next_awaited(awaited)
        found[task.get_name()] = lines
    return found


def _next_awaited(awaitable: Any) -> Any:
    """What a coroutine or async generator awaits. Some awaitables hide what they drive except
    from the GC: the wrapper of an object awaited through `__await__` (Faust's actors) and the
    step of an `async for` over an async generator (Faust's `take_events`)."""
    found = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    if type(found).__name__ in ("coroutine_wrapper", "async_generator_asend"):
        driven = gc.get_referents(found)
        return next((r for r in driven if hasattr(r, "cr_frame") or hasattr(r, "ag_frame")), None)
    return found
