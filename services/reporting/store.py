"""PostgreSQL adapter of reporting: applies the matcher's statuses and the logbook's events to
the counters by difference, with the consumed offsets in the same transaction, and reads the
counters back.

A batch of one partition is applied in one transaction: the partition's offset row is locked,
messages below the stored offset are skipped (a replay), then

- statuses: the applied rows of the batch's keys are locked and loaded, `contributions.Ledger`
  computes the changes (only newer versions count), and a household status applied also sets
  its household's deprivation set in the case file (`cases.py`), if there is or must be one;
- logbook events: the batch's case files are locked (made when new) and loaded with which of
  its event IDs were applied already, and `cases.CaseLedger` applies the others;

and the changed rows, the counter changes and the new offset are written together. Case files
are locked in key order by one statement, before any counter row, and counter rows are written
in key order, so replicas applying other partitions at the same time lock shared rows (a case,
the country, a province) in one order and cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import orjson
from alembic import command
from alembic.config import Config
from pydantic import ValidationError

from services.contracts.areas import COUNTRY_CODE
from services.contracts.events import (
    Envelope,
    HouseholdStatus,
    LogbookEvent,
    LogbookEventData,
    PersonStatus,
)
from services.contracts.indicators import Dimension
from services.contracts.topics import HOUSEHOLD_STATUS, LOGBOOK_EVENTS, PERSON_STATUS
from services.reporting.cases import CaseFile, CaseKey, CaseLedger, CaseRow, case_key
from services.reporting.contributions import (
    Applied,
    Cell,
    Contribution,
    EntityKey,
    Ledger,
    entity_key,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Db: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"

# PostgreSQL is unreachable or restarting: retry later, nothing is wrong with the messages.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    # A connection cut mid-query (PostgreSQL restarting) fails its reset on release this way.
    asyncpg.InternalClientError,
)
# PostgreSQL rolled the transaction back to break a deadlock: nothing was written, try again.
LOCK_CONFLICTS: tuple[type[Exception], ...] = (asyncpg.DeadlockDetectedError,)


def migrate(database_url: str) -> None:
    """Applies the reporting schema's migrations (alembic, blocking)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    )
    command.upgrade(config, "head")


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A message of a status topic or of the logbook's events, as the consumer hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


Status = PersonStatus | HouseholdStatus


def parse(message: StatusMessage) -> tuple[Status, datetime]:
    """The status a message carries and its event time; ValueError when it carries none."""
    if message.value is None:
        msg = "empty message (a tombstone): status topics carry none"
        raise ValueError(msg)
    if message.topic == PERSON_STATUS.name:
        person = Envelope[PersonStatus].model_validate_json(message.value)
        return person.data, person.time
    if message.topic == HOUSEHOLD_STATUS.name:
        household = Envelope[HouseholdStatus].model_validate_json(message.value)
        return household.data, household.time
    msg = f"not a status topic: {message.topic}"
    raise ValueError(msg)


def parse_logbook(message: StatusMessage) -> tuple[str, LogbookEvent, datetime]:
    """The envelope ID, the event and its time; ValueError when the message carries none."""
    if message.value is None:
        msg = "empty message (a tombstone): logbook.events.v1 carries none"
        raise ValueError(msg)
    wrapped = Envelope[LogbookEventData].model_validate_json(message.value)
    return wrapped.id, wrapped.data.event, wrapped.time


@dataclass(frozen=True, slots=True)
class Freshness:
    offsets: dict[tuple[str, int], int]
    newest_event_at: datetime | None


@dataclass(frozen=True, slots=True)
class DirtyArea:
    survey_year: int
    area_code: str
    generation: int


class Leader:
    """The connection that holds a leader's advisory lock: if it is lost, so is the lock."""

    def __init__(self, connection: Db) -> None:
        self._connection = connection

    async def check(self) -> None:
        """Raises if the lock's connection is gone (the lock went with it)."""
        await self._connection.fetchval("SELECT 1")


@dataclass(frozen=True, slots=True)
class AreaCounters:
    counters: dict[str, int]
    as_of: datetime | None


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, database_url: str, size: int = 10) -> Store:
        return cls(await asyncpg.create_pool(database_url, min_size=1, max_size=size))

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    # --- applying ------------------------------------------------------------------------------

    async def stored_offsets(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        wanted = list(partitions)
        rows = await self._pool.fetch(
            """SELECT topic, partition, next_offset FROM reporting.consumer_offsets
               WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))""",
            [t for t, _ in wanted],
            [p for _, p in wanted],
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def apply(self, messages: Sequence[StatusMessage]) -> int:
        """Applies messages of one partition, in order, with their offset, in one transaction.
        Messages below the stored offset are skipped; a status changes the counters only if its
        version is newer than the applied one, a logbook event only if its ID was never
        applied. Returns how many messages were consumed."""
        if not messages:
            return 0
        topic, partition = messages[0].topic, messages[0].partition
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """INSERT INTO reporting.consumer_offsets (topic, partition, next_offset)
                   VALUES ($1, $2, 0) ON CONFLICT DO NOTHING""",
                topic,
                partition,
            )
            next_offset: int = await connection.fetchval(
                """SELECT next_offset FROM reporting.consumer_offsets
                   WHERE topic = $1 AND partition = $2 FOR UPDATE""",
                topic,
                partition,
            )
            fresh = [m for m in messages if m.offset >= next_offset]
            if not fresh:
                return 0
            if topic == LOGBOOK_EVENTS.name:
                newest = await _apply_logbook_events(connection, fresh)
            else:
                newest = await _apply_statuses(connection, fresh)
            await connection.execute(
                """UPDATE reporting.consumer_offsets
                   SET next_offset = $3, updated_at = now(),
                       newest_event_at = greatest(newest_event_at, $4)
                   WHERE topic = $1 AND partition = $2""",
                topic,
                partition,
                fresh[-1].offset + 1,
                newest,
            )
        return len(fresh)

    # --- reading -------------------------------------------------------------------------------

    async def area_counters(self, survey_year: int, area_code: str) -> AreaCounters:
        """The counters of one area and year (empty when nothing was counted there), and when
        the consumer last applied anything."""
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await connection.fetch(
                """SELECT counter, value FROM reporting.counters
                   WHERE survey_year = $1 AND area_code = $2 AND value <> 0""",
                survey_year,
                area_code,
            )
            as_of = await connection.fetchval(
                "SELECT max(updated_at) FROM reporting.consumer_offsets"
            )
        return AreaCounters({r["counter"]: r["value"] for r in rows}, as_of)

    async def area_counters_by_year(
        self, area_code: str
    ) -> tuple[dict[int, dict[str, int]], datetime | None]:
        """The counters of one area in every survey year with anything counted there."""
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await connection.fetch(
                """SELECT survey_year, counter, value FROM reporting.counters
                   WHERE area_code = $1 AND value <> 0""",
                area_code,
            )
            as_of = await connection.fetchval(
                "SELECT max(updated_at) FROM reporting.consumer_offsets"
            )
        by_year: dict[int, dict[str, int]] = {}
        for r in rows:
            by_year.setdefault(r["survey_year"], {})[r["counter"]] = r["value"]
        return dict(sorted(by_year.items())), as_of

    async def children_counters(
        self, survey_year: int, parent: str
    ) -> tuple[dict[str, dict[str, int]], datetime | None]:
        """The counters of every child area of `parent` with anything counted, by area code."""
        child_length = 2 if parent == COUNTRY_CODE else len(parent) + 2
        prefix = "" if parent == COUNTRY_CODE else parent
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await connection.fetch(
                """SELECT area_code, counter, value FROM reporting.counters
                   WHERE survey_year = $1 AND area_code <> 'TH' AND length(area_code) = $2
                     AND left(area_code, $3) = $4 AND value <> 0""",
                survey_year,
                child_length,
                len(prefix),
                prefix,
            )
            as_of = await connection.fetchval(
                "SELECT max(updated_at) FROM reporting.consumer_offsets"
            )
        children: dict[str, dict[str, int]] = {}
        for r in rows:
            children.setdefault(r["area_code"], {})[r["counter"]] = r["value"]
        return children, as_of

    # --- publishing ----------------------------------------------------------------------------

    async def dirty_areas(self, limit: int) -> list[DirtyArea]:
        """Areas changed since they were last published, the longest waiting first."""
        rows = await self._pool.fetch(
            """SELECT survey_year, area_code, generation FROM reporting.dirty_areas
               ORDER BY changed_at LIMIT $1""",
            limit,
        )
        return [DirtyArea(r["survey_year"], r["area_code"], r["generation"]) for r in rows]

    async def published(self, areas: Sequence[DirtyArea]) -> None:
        """Clears the areas published, unless they changed again since they were read. The rows
        are locked in the consumer's order (year, then area code by code point, as Python
        sorts), or a delete and a consumer marking the same areas could deadlock."""
        await self._pool.execute(
            """WITH cleared AS (
                   SELECT d.survey_year, d.area_code FROM reporting.dirty_areas d
                   JOIN unnest($1::int[], $2::text[], $3::bigint[]) AS p(y, a, g)
                     ON d.survey_year = p.y AND d.area_code = p.a AND d.generation = p.g
                   ORDER BY d.survey_year, d.area_code COLLATE "C"
                   FOR UPDATE OF d
               )
               DELETE FROM reporting.dirty_areas d USING cleared c
               WHERE d.survey_year = c.survey_year AND d.area_code = c.area_code""",
            [a.survey_year for a in areas],
            [a.area_code for a in areas],
            [a.generation for a in areas],
        )

    @contextlib.asynccontextmanager
    async def leadership(self, lock_id: int, retry_seconds: float) -> AsyncIterator[Leader]:
        """Waits until this process holds the session advisory lock `lock_id` (one leader among
        replicas), and holds it, on a connection of its own, until the block ends."""
        async with self._pool.acquire() as connection:
            while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock_id):
                await asyncio.sleep(retry_seconds)
            try:
                yield Leader(connection)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", lock_id)

    async def freshness(self) -> Freshness:
        rows = await self._pool.fetch(
            """SELECT topic, partition, next_offset, newest_event_at
               FROM reporting.consumer_offsets"""
        )
        newest = [r["newest_event_at"] for r in rows if r["newest_event_at"] is not None]
        return Freshness(
            {(r["topic"], r["partition"]): r["next_offset"] for r in rows},
            max(newest) if newest else None,
        )

    async def years(self) -> list[int]:
        rows = await self._pool.fetch(
            """SELECT DISTINCT survey_year FROM reporting.counters
               WHERE area_code = 'TH' AND value <> 0 ORDER BY survey_year"""
        )
        return [r["survey_year"] for r in rows]


async def _apply_statuses(connection: Db, messages: list[StatusMessage]) -> datetime | None:
    """Applies the statuses among `messages`; returns the newest event time read."""
    statuses: list[Status] = []
    newest: datetime | None = None
    for message in messages:
        try:
            status, time = parse(message)
        except (ValidationError, ValueError) as error:
            await _dead_letter(connection, message, str(error))
            continue
        statuses.append(status)
        newest = time if newest is None else max(newest, time)
    ledger = Ledger(await _load_applied(connection, {entity_key(s) for s in statuses}))
    deprivations: dict[CaseKey, list[Dimension]] = {}
    for status in statuses:
        if ledger.apply(status) and isinstance(status, HouseholdStatus):
            deprivations[case_key(status.household_id, status.survey_year)] = status.deprivation
    cases = CaseLedger()
    if deprivations:
        wanted = {key: bool(dimensions) for key, dimensions in deprivations.items()}
        cases = CaseLedger(await _lock_cases(connection, wanted))
        for key, dimensions in deprivations.items():
            cases.set_deprivation(key, dimensions)
    await _write_applied(connection, ledger)
    await _write_cases(connection, cases)
    changes = ledger.counters  # a new Counter, built from the batch's changes per village
    changes.update(cases.counters)  # update, not +: + would drop negative changes
    await _write_counters(connection, changes)
    await _mark_dirty(connection, changes)
    return newest


async def _apply_logbook_events(connection: Db, messages: list[StatusMessage]) -> datetime | None:
    """Applies the logbook events among `messages`, each event ID once; returns the newest
    event time read."""
    events: list[tuple[str, LogbookEvent]] = []
    newest: datetime | None = None
    for message in messages:
        try:
            event_id, event, time = parse_logbook(message)
        except (ValidationError, ValueError) as error:
            await _dead_letter(connection, message, str(error))
            continue
        events.append((event_id, event))
        newest = time if newest is None else max(newest, time)
    if not events:
        return newest
    keys = {case_key(e.household_id, e.survey_year) for _, e in events}
    rows = await _lock_cases(connection, dict.fromkeys(keys, True))
    seen = await connection.fetch(
        "SELECT event_id FROM reporting.logbook_events WHERE event_id = ANY($1::text[])",
        [event_id for event_id, _ in events],
    )
    cases = CaseLedger(rows, (r["event_id"] for r in seen))
    for event_id, event in events:
        cases.apply_event(event_id, event)
    await connection.execute(
        "INSERT INTO reporting.logbook_events (event_id) SELECT unnest($1::text[])",
        cases.new_event_ids,
    )
    await _write_cases(connection, cases)
    await _write_counters(connection, cases.counters)
    await _mark_dirty(connection, cases.counters)
    return newest


async def _lock_cases(connection: Db, wanted: dict[CaseKey, bool]) -> dict[CaseKey, CaseRow]:
    """Locks and loads the case files of `wanted`'s keys, in key order by one statement; a key
    marked True gets an empty file if it has none, one marked False is left without. A file is
    only ever made here, so two transactions that both need one wait for each other."""
    ordered = sorted(wanted)
    rows = await connection.fetch(
        """INSERT INTO reporting.cases AS c (household_id, survey_year)
           SELECT h, y FROM unnest($1::text[], $2::int[], $3::bool[]) AS t(h, y, make)
           WHERE make OR EXISTS (SELECT 1 FROM reporting.cases e
                                 WHERE e.household_id = t.h AND e.survey_year = t.y)
           ORDER BY h, y
           ON CONFLICT (household_id, survey_year) DO UPDATE SET updated_at = c.updated_at
           RETURNING household_id, survey_year, file::text AS file, village_code,
                     counters::text AS counters""",
        [h for h, _ in ordered],
        [y for _, y in ordered],
        [wanted[key] for key in ordered],
    )
    return {
        (r["household_id"], r["survey_year"]): CaseRow(
            CaseFile.model_validate_json(r["file"]),
            Contribution(r["village_code"], orjson.loads(r["counters"])),
        )
        for r in rows
    }


async def _write_cases(connection: Db, cases: CaseLedger) -> None:
    """Writes the changed case files back (their rows are locked by `_lock_cases`)."""
    changed = sorted(cases.changed)
    if not changed:
        return
    rows = [cases.cases[key] for key in changed]
    await connection.execute(
        """UPDATE reporting.cases c
           SET file = t.f::jsonb, village_code = t.v, counters = t.j::jsonb, updated_at = now()
           FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])
             AS t(h, y, f, v, j)
           WHERE c.household_id = t.h AND c.survey_year = t.y""",
        [h for h, _ in changed],
        [y for _, y in changed],
        [r.file.model_dump_json() for r in rows],
        [r.contribution.village_code for r in rows],
        [orjson.dumps(dict(r.contribution.counters)).decode() for r in rows],
    )


async def _load_applied(connection: Db, keys: set[EntityKey]) -> dict[EntityKey, Applied]:
    if not keys:
        return {}
    ordered = sorted(keys)
    rows = await connection.fetch(
        """SELECT kind, entity_key, version, village_code, counters::text AS counters
           FROM reporting.applied
           WHERE (kind, entity_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
           ORDER BY kind, entity_key FOR UPDATE""",
        [k for k, _ in ordered],
        [e for _, e in ordered],
    )
    return {
        (r["kind"], r["entity_key"]): Applied(
            r["version"], Contribution(r["village_code"], orjson.loads(r["counters"]))
        )
        for r in rows
    }


async def _write_applied(connection: Db, ledger: Ledger) -> None:
    changed = sorted(ledger.changed)
    if not changed:
        return
    rows = [ledger.applied[key] for key in changed]
    await connection.execute(
        """INSERT INTO reporting.applied (kind, entity_key, version, village_code, counters)
           SELECT k, e, v, c, j::jsonb
           FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[]) AS t(k, e, v, c, j)
           ON CONFLICT (kind, entity_key) DO UPDATE
             SET version = excluded.version, village_code = excluded.village_code,
                 counters = excluded.counters, updated_at = now()""",
        [k for k, _ in changed],
        [e for _, e in changed],
        [a.version for a in rows],
        [a.contribution.village_code for a in rows],
        [orjson.dumps(dict(a.contribution.counters)).decode() for a in rows],
    )


async def _write_counters(connection: Db, changes: Counter[Cell]) -> None:
    cells = sorted(cell for cell, value in changes.items() if value)
    if not cells:
        return
    await connection.execute(
        """INSERT INTO reporting.counters (survey_year, area_code, counter, value)
           SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[])
           ON CONFLICT (survey_year, area_code, counter) DO UPDATE
             SET value = reporting.counters.value + excluded.value""",
        [c[0] for c in cells],
        [c[1] for c in cells],
        [c[2] for c in cells],
        [changes[c] for c in cells],
    )


async def _mark_dirty(connection: Db, changes: Counter[Cell]) -> None:
    """The areas whose counters changed wait to be published (in key order, as the counters)."""
    areas = sorted({(year, area) for (year, area, _), value in changes.items() if value})
    if not areas:
        return
    await connection.execute(
        """INSERT INTO reporting.dirty_areas (survey_year, area_code)
           SELECT * FROM unnest($1::int[], $2::text[])
           ON CONFLICT (survey_year, area_code) DO UPDATE
             SET generation = reporting.dirty_areas.generation + 1, changed_at = now()""",
        [a[0] for a in areas],
        [a[1] for a in areas],
    )


async def _dead_letter(connection: Db, message: StatusMessage, error: str) -> None:
    """An unreadable message is skipped and kept once (a replay does not add it again). Its
    value is not logged: it may hold a citizen ID."""
    first_time = await connection.fetchval(
        """INSERT INTO reporting.dead_letters (topic, partition, "offset", error)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        message.topic,
        message.partition,
        message.offset,
        error[:2000],
    )
    if first_time:
        log.warning(
            "unreadable status skipped",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
        )
