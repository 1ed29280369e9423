"""PostgreSQL adapter of the logbook: users and tokens, the matcher's statuses and the cases they
drive, field work, the audit trail and the transactional outbox.

Every write commits with its audit row and its outbox events in one transaction. Writes that
concern one household lock its case row first, so the outbox holds that household's events in
commit order and the relay publishes them in that order.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
from alembic import command
from alembic.config import Config
from pydantic import BaseModel, ValidationError

from services.contracts.events import (
    CaseOpened,
    CaseStatusChanged,
    DeadLetter,
    Envelope,
    HouseholdStatus,
    InterventionRecorded,
    LogbookEvent,
    LogbookEventData,
    PersonStatus,
    ResolutionRecorded,
    VisitRecorded,
    envelope_json,
    text_or_base64,
)
from services.contracts.indicators import Dimension
from services.contracts.records import BmnHousehold
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    LOGBOOK_DEAD_LETTER,
    LOGBOOK_EVENTS,
    PERSON_STATUS,
)
from services.logbook.cases import (
    CaseState,
    Resolution,
    case_id,
    deprivation_bits,
    dimensions_of,
    is_newer,
    next_case,
)
from services.logbook.report import CaseFacts, InterventionFacts, Quarter
from services.logbook.scope import Role, User, like_patterns
from services.logbook.tokens import NewToken, secret_matches, split_token

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Db: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_MIGRATIONS = Path(__file__).parent / "migrations"
BANGKOK = timezone(timedelta(hours=7), "Asia/Bangkok")
SOURCE = "/logbook"
FIELD_SOURCE = "/logbook/field"
SYSTEM = "system"
CONSUMER_NAME = "logbook"
_HOUSEHOLD_STATUS = Envelope[HouseholdStatus]
_PERSON_STATUS = Envelope[PersonStatus]

# PostgreSQL is unreachable or restarting: the caller may retry (503), nothing is wrong with
# the request itself.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    # A connection cut mid-query (PostgreSQL restarting) fails its reset on release this way.
    asyncpg.InternalClientError,
)


def migrate(database_url: str) -> None:
    """Applies the logbook schema's migrations (alembic, blocking)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    )
    command.upgrade(config, "head")


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A message of a status topic, as the consumer hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class CaseRow:
    case_id: str
    household_id: str
    survey_year: int
    village_code: str
    reason: str
    status: str
    crisis: bool
    priority: int
    household: HouseholdStatus
    opened_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CaseFilters:
    dimension: Dimension | None = None
    crisis: bool | None = None
    status: str | None = None
    reason: str | None = None
    village: str | None = None
    survey_year: int | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    crisis: bool
    priority: int
    case_id: str


@dataclass(frozen=True, slots=True)
class UserRow:
    user: User
    created_at: datetime
    disabled_at: datetime | None


def _case_row(row: asyncpg.Record) -> CaseRow:
    return CaseRow(
        case_id=row["case_id"],
        household_id=row["household_id"],
        survey_year=row["survey_year"],
        village_code=row["village_code"],
        reason=row["reason"],
        status=row["status"],
        crisis=row["crisis"],
        priority=row["priority"],
        household=HouseholdStatus.model_validate_json(row["household"]),
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
    )


def _area_condition(column: str, patterns: list[str] | None, args: list[Any]) -> str:
    """`column LIKE p1 OR ...` for the scope's patterns (TRUE when it covers everything)."""
    if patterns is None:
        return "TRUE"
    parts = []
    for pattern in patterns:
        args.append(pattern)
        parts.append(f"{column} LIKE ${len(args)}")
    return "(" + " OR ".join(parts) + ")"


_CASE_COLUMNS = """c.case_id, c.household_id, c.survey_year, c.village_code, c.reason, c.status,
    c.crisis, c.priority, c.opened_at, c.updated_at, h.status::text AS household"""


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

    # --- users and tokens ----------------------------------------------------------------------

    async def add_user(
        self, user_id: str, display_name: str, role: Role, areas: list[str], actor: str
    ) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO logbook.users (user_id, display_name, role, areas) VALUES ($1, $2, $3, $4)",
                user_id,
                display_name,
                role,
                areas,
            )
            await _audit(
                connection,
                actor,
                "user_created",
                ("user", user_id),
                after={"role": role, "areas": areas},
            )

    async def user(self, user_id: str) -> UserRow | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, display_name, role, areas, created_at, disabled_at FROM logbook.users WHERE user_id = $1",
            user_id,
        )
        return None if row is None else _user_row(row)

    async def list_users(self) -> list[UserRow]:
        rows = await self._pool.fetch(
            "SELECT user_id, display_name, role, areas, created_at, disabled_at FROM logbook.users ORDER BY created_at"
        )
        return [_user_row(r) for r in rows]

    async def add_token(self, user_id: str, token: NewToken, note: str | None, actor: str) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO logbook.tokens (token_id, user_id, secret_sha256, note) VALUES ($1, $2, $3, $4)",
                token.token_id,
                user_id,
                token.secret_sha256,
                note,
            )
            await _audit(
                connection,
                actor,
                "token_created",
                ("token", token.token_id),
                after={"user_id": user_id, "note": note},
            )

    async def revoke_token(self, token_id: str, actor: str) -> bool:
        async with self._pool.acquire() as connection, connection.transaction():
            status = await connection.execute(
                "UPDATE logbook.tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL",
                token_id,
            )
            revoked = bool(status.endswith(" 1"))
            if revoked:
                await _audit(
                    connection,
                    actor,
                    "token_revoked",
                    ("token", token_id),
                    before={"revoked": False},
                    after={"revoked": True},
                )
        return revoked

    async def user_for(self, token: str) -> User | None:
        """The user a token belongs to, if it is valid, not revoked and the user not disabled."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        row = await self._pool.fetchrow(
            """SELECT u.user_id, u.display_name, u.role, u.areas, t.secret_sha256
               FROM logbook.tokens t JOIN logbook.users u USING (user_id)
               WHERE t.token_id = $1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL""",
            token_id,
        )
        if row is None or not secret_matches(secret, row["secret_sha256"]):
            return None
        return User(row["user_id"], row["display_name"], row["role"], tuple(row["areas"]))

    # --- the matcher's statuses ----------------------------------------------------------------

    async def stored_offsets(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        wanted = list(partitions)
        rows = await self._pool.fetch(
            """SELECT topic, partition, next_offset FROM logbook.consumer_offsets
               WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))""",
            [t for t, _ in wanted],
            [p for _, p in wanted],
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def apply(self, messages: Sequence[StatusMessage]) -> int:
        """Applies messages of one partition, in order, with their offsets, in one transaction.
        Messages below the stored offset are skipped (a replay), and each status changes
        something only if its version is newer. Returns how many were applied."""
        if not messages:
            return 0
        topic, partition = messages[0].topic, messages[0].partition
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """INSERT INTO logbook.consumer_offsets (topic, partition, next_offset)
                   VALUES ($1, $2, 0) ON CONFLICT DO NOTHING""",
                topic,
                partition,
            )
            next_offset: int = await connection.fetchval(
                """SELECT next_offset FROM logbook.consumer_offsets
                   WHERE topic = $1 AND partition = $2 FOR UPDATE""",
                topic,
                partition,
            )
            fresh = [m for m in messages if m.offset >= next_offset]
            if not fresh:
                return 0
            if topic == PERSON_STATUS.name:
                await _apply_persons(connection, fresh)
            else:
                await _apply_households(connection, fresh)
            await connection.execute(
                "UPDATE logbook.consumer_offsets SET next_offset = $3 WHERE topic = $1 AND partition = $2",
                topic,
                partition,
                fresh[-1].offset + 1,
            )
        return len(fresh)

    # --- cases ---------------------------------------------------------------------------------

    async def case(self, user: User, case_id: str) -> CaseRow | None:
        """The case if it exists and lies in the user's area; None either way otherwise."""
        row = await self._pool.fetchrow(
            f"""SELECT {_CASE_COLUMNS} FROM logbook.cases c
                JOIN logbook.households h USING (household_id, survey_year)
                WHERE c.case_id = $1""",  # noqa: S608 (constant columns)
            case_id,
        )
        if row is None or not user.covers(row["village_code"]):
            return None
        return _case_row(row)

    async def cases(
        self,
        prefixes: tuple[str, ...],
        filters: CaseFilters,
        after: Cursor | None,
        limit: int,
    ) -> list[CaseRow]:
        """Cases under the prefixes, crisis first, then by priority (keyset pagination)."""
        args: list[Any] = []
        conditions = [_area_condition("c.village_code", like_patterns(prefixes), args)]
        if filters.village is not None:
            args.append(filters.village)
            conditions.append(f"c.village_code = ${len(args)}")
        if filters.dimension is not None:
            args.append(filters.dimension.bit)
            conditions.append(f"c.deprivation_bits & ${len(args)} <> 0")
        for column, value in (
            ("crisis", filters.crisis),
            ("status", filters.status),
            ("reason", filters.reason),
            ("survey_year", filters.survey_year),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"c.{column} = ${len(args)}")
        if after is not None:
            args.extend((after.crisis, after.priority, after.case_id))
            n = len(args)
            conditions.append(f"(c.crisis, c.priority, c.case_id) < (${n - 2}, ${n - 1}, ${n})")
        args.append(limit)
        rows = await self._pool.fetch(
            f"""SELECT {_CASE_COLUMNS} FROM logbook.cases c
                JOIN logbook.households h USING (household_id, survey_year)
                WHERE {" AND ".join(conditions)}
                ORDER BY c.crisis DESC, c.priority DESC, c.case_id DESC
                LIMIT ${len(args)}""",  # noqa: S608 (placeholders only)
            *args,
        )
        return [_case_row(r) for r in rows]

    async def members(self, case: CaseRow) -> list[PersonStatus]:
        rows = await self._pool.fetch(
            """SELECT status::text FROM logbook.persons
               WHERE household_id = $1 AND survey_year = $2 AND status->>'person_class' <> 'removed'
               ORDER BY citizen_id""",
            case.household_id,
            case.survey_year,
        )
        return [PersonStatus.model_validate_json(r["status"]) for r in rows]

    async def visits(self, case_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """SELECT visit_id, visited_on, team_member, notes, latitude, longitude, recorded_by,
                      recorded_at FROM logbook.visits WHERE case_id = $1 ORDER BY visited_on, recorded_at""",
            case_id,
        )
        return [dict(r) for r in rows]

    async def interventions(self, case_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """SELECT intervention_id, dimension, agency_code, kind, description, amount_baht,
                      status, started_on, completed_on, recorded_by, recorded_at, updated_at
               FROM logbook.interventions WHERE case_id = $1 ORDER BY recorded_at""",
            case_id,
        )
        return [dict(r) for r in rows]

    async def intervention(self, case_id: str, intervention_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            """SELECT intervention_id, dimension, agency_code, kind, description, amount_baht,
                      status, started_on, completed_on, recorded_by, recorded_at, updated_at
               FROM logbook.interventions WHERE case_id = $1 AND intervention_id = $2""",
            case_id,
            intervention_id,
        )
        return None if row is None else dict(row)

    async def resolutions(self, case_id: str) -> list[dict[str, Any]]:
        """The current resolution of each dimension (its newest record)."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT ON (dimension) dimension, resolution, note, recorded_by, recorded_at
               FROM logbook.resolutions WHERE case_id = $1
               ORDER BY dimension, resolution_id DESC""",
            case_id,
        )
        return [dict(r) for r in rows]

    # --- field work (every write: change, audit row and outbox event in one transaction) -------

    async def add_visit(self, user: User, case: CaseRow, visit: dict[str, Any]) -> dict[str, Any]:
        visit_id = new_id("v")
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock_case(connection, case.case_id)
            row = await connection.fetchrow(
                """INSERT INTO logbook.visits (visit_id, case_id, visited_on, team_member, notes,
                       latitude, longitude, recorded_by)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   RETURNING visit_id, visited_on, team_member, notes, latitude, longitude,
                             recorded_by, recorded_at""",
                visit_id,
                case.case_id,
                visit["visited_on"],
                visit["team_member"],
                visit["notes"],
                visit["latitude"],
                visit["longitude"],
                user.user_id,
            )
            stored = _returned(row)
            await _audit(
                connection,
                user.user_id,
                "visit_recorded",
                ("visit", visit_id),
                case_id=case.case_id,
                village_code=case.village_code,
                after=stored,
            )
            await _logbook_event(
                connection,
                VisitRecorded(
                    **_event_base(case, user.user_id, stored["recorded_at"]),
                    visit_id=visit_id,
                    visited_on=stored["visited_on"],
                ),
            )
        return stored

    async def add_intervention(
        self, user: User, case: CaseRow, intervention: dict[str, Any]
    ) -> dict[str, Any]:
        intervention_id = new_id("i")
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock_case(connection, case.case_id)
            row = await connection.fetchrow(
                """INSERT INTO logbook.interventions (intervention_id, case_id, dimension,
                       agency_code, kind, description, amount_baht, status, started_on,
                       completed_on, recorded_by)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                   RETURNING intervention_id, dimension, agency_code, kind, description,
                             amount_baht, status, started_on, completed_on, recorded_by,
                             recorded_at, updated_at""",
                intervention_id,
                case.case_id,
                intervention["dimension"],
                intervention["agency_code"],
                intervention["kind"],
                intervention["description"],
                intervention["amount_baht"],
                intervention["status"],
                intervention["started_on"],
                intervention["completed_on"],
                user.user_id,
            )
            stored = _returned(row)
            await self._intervention_written(connection, user, case, None, stored)
        return stored

    async def update_intervention(
        self, user: User, case: CaseRow, intervention_id: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock_case(connection, case.case_id)
            before = await connection.fetchrow(
                """SELECT intervention_id, dimension, agency_code, kind, description, amount_baht,
                          status, started_on, completed_on, recorded_by, recorded_at, updated_at
                   FROM logbook.interventions WHERE case_id = $1 AND intervention_id = $2""",
                case.case_id,
                intervention_id,
            )
            if before is None:
                return None
            merged = {**dict(before), **changes}
            row = await connection.fetchrow(
                """UPDATE logbook.interventions SET kind = $3, description = $4, amount_baht = $5,
                       status = $6, started_on = $7, completed_on = $8, updated_at = now()
                   WHERE case_id = $1 AND intervention_id = $2
                   RETURNING intervention_id, dimension, agency_code, kind, description,
                             amount_baht, status, started_on, completed_on, recorded_by,
                             recorded_at, updated_at""",
                case.case_id,
                intervention_id,
                merged["kind"],
                merged["description"],
                merged["amount_baht"],
                merged["status"],
                merged["started_on"],
                merged["completed_on"],
            )
            stored = _returned(row)
            await self._intervention_written(connection, user, case, dict(before), stored)
        return stored

    async def _intervention_written(
        self,
        connection: Db,
        user: User,
        case: CaseRow,
        before: dict[str, Any] | None,
        after: dict[str, Any],
    ) -> None:
        await _audit(
            connection,
            user.user_id,
            "intervention_recorded" if before is None else "intervention_updated",
            ("intervention", after["intervention_id"]),
            case_id=case.case_id,
            village_code=case.village_code,
            before=before,
            after=after,
        )
        await _logbook_event(
            connection,
            InterventionRecorded(
                **_event_base(case, user.user_id, after["updated_at"]),
                intervention_id=after["intervention_id"],
                dimension=Dimension(after["dimension"]),
                agency_code=after["agency_code"],
                amount_baht=float(after["amount_baht"]),
                status=after["status"],
            ),
        )

    async def set_resolution(
        self, user: User, case: CaseRow, dimension: Dimension, resolution: Resolution, note: str
    ) -> dict[str, Any]:
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock_case(connection, case.case_id)
            before = await connection.fetchrow(
                """SELECT dimension, resolution, note, recorded_by, recorded_at
                   FROM logbook.resolutions WHERE case_id = $1 AND dimension = $2
                   ORDER BY resolution_id DESC LIMIT 1""",
                case.case_id,
                dimension.value,
            )
            row = await connection.fetchrow(
                """INSERT INTO logbook.resolutions (case_id, dimension, resolution, note, recorded_by)
                   VALUES ($1, $2, $3, $4, $5)
                   RETURNING dimension, resolution, note, recorded_by, recorded_at""",
                case.case_id,
                dimension.value,
                resolution,
                note,
                user.user_id,
            )
            stored = _returned(row)
            await _audit(
                connection,
                user.user_id,
                "resolution_recorded",
                ("resolution", f"{case.case_id}:{dimension.value}"),
                case_id=case.case_id,
                village_code=case.village_code,
                before=None if before is None else dict(before),
                after=stored,
            )
            await _logbook_event(
                connection,
                ResolutionRecorded(
                    **_event_base(case, user.user_id, stored["recorded_at"]),
                    dimension=dimension,
                    resolution=resolution,
                ),
            )
        return stored

    async def add_field_household(self, user: User, household: BmnHousehold) -> datetime:
        """Stores a household the survey missed and publishes it for the matcher (source field),
        in the envelope ingest uses. Raises asyncpg.UniqueViolationError for a known ID."""
        record = _dump(household)
        async with self._pool.acquire() as connection, connection.transaction():
            added_at: datetime = await connection.fetchval(
                """INSERT INTO logbook.field_households (household_id, village_code, record, added_by)
                   VALUES ($1, $2, $3::jsonb, $4) RETURNING added_at""",
                household.household_id,
                household.village_code,
                _json(record),
                user.user_id,
            )
            await _audit(
                connection,
                user.user_id,
                "field_household_added",
                ("field_household", household.household_id),
                village_code=household.village_code,
                after=record,
            )
            event = envelope_json(
                BMN_HOUSEHOLDS.require_event_type(),
                FIELD_SOURCE,
                household,
                subject=household.household_id,
                time=added_at,
            )
            await _outbox(connection, BMN_HOUSEHOLDS.name, household.household_id, event)
        return added_at

    async def field_households(self, prefixes: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
        args: list[Any] = []
        condition = _area_condition("village_code", like_patterns(prefixes), args)
        args.append(limit)
        rows = await self._pool.fetch(
            f"""SELECT household_id, village_code, record::text AS record, added_by, added_at
                FROM logbook.field_households WHERE {condition}
                ORDER BY added_at DESC, household_id LIMIT ${len(args)}""",  # noqa: S608
            *args,
        )
        return [{**dict(r), "record": orjson.loads(r["record"])} for r in rows]

    async def field_household(self, household_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            """SELECT household_id, village_code, record::text AS record, added_by, added_at
               FROM logbook.field_households WHERE household_id = $1""",
            household_id,
        )
        return None if row is None else {**dict(row), "record": orjson.loads(row["record"])}

    # --- audit trail ---------------------------------------------------------------------------

    async def audit(
        self,
        prefixes: tuple[str, ...],
        *,
        case_id: str | None,
        before_id: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Audit rows about things in the areas (newest first); rows without an area (users,
        tokens) only for a scope that covers everything."""
        args: list[Any] = []
        patterns = like_patterns(prefixes)
        conditions = [_area_condition("village_code", patterns, args)]
        if case_id is not None:
            args.append(case_id)
            conditions.append(f"case_id = ${len(args)}")
        if before_id is not None:
            args.append(before_id)
            conditions.append(f"audit_id < ${len(args)}")
        args.append(limit)
        rows = await self._pool.fetch(
            f"""SELECT audit_id, at, actor, action, entity, entity_id, case_id, village_code,
                       before::text AS before, after::text AS after
                FROM logbook.audit WHERE {" AND ".join(conditions)}
                ORDER BY audit_id DESC LIMIT ${len(args)}""",  # noqa: S608
            *args,
        )
        return [
            {
                **dict(r),
                "before": None if r["before"] is None else orjson.loads(r["before"]),
                "after": None if r["after"] is None else orjson.loads(r["after"]),
            }
            for r in rows
        ]

    # --- progress report -----------------------------------------------------------------------

    async def report_facts(
        self, prefixes: tuple[str, ...], quarter: Quarter, survey_year: int | None
    ) -> list[CaseFacts]:
        """Every case in the areas opened before the quarter's end, as it stood then (statuses
        as they are now: their history is in the audit trail, not replayed here)."""
        start = datetime.combine(quarter.start, time(), BANGKOK)
        end = datetime.combine(quarter.end, time(), BANGKOK)
        args: list[Any] = [end]
        conditions = [
            "c.opened_at < $1",
            _area_condition("c.village_code", like_patterns(prefixes), args),
        ]
        if survey_year is not None:
            args.append(survey_year)
            conditions.append(f"c.survey_year = ${len(args)}")
        where = " AND ".join(conditions)
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            cases = await connection.fetch(
                f"""SELECT case_id, village_code, reason, status, deprivation_bits
                    FROM logbook.cases c WHERE {where}""",  # noqa: S608
                *args,
            )
            visits = await connection.fetch(
                f"""SELECT v.case_id, count(*) AS visits,
                           count(*) FILTER (WHERE v.visited_on >= ${len(args) + 1}) AS in_quarter
                    FROM logbook.visits v JOIN logbook.cases c USING (case_id)
                    WHERE {where} AND v.visited_on < ${len(args) + 2}
                    GROUP BY v.case_id""",  # noqa: S608
                *args,
                quarter.start,
                quarter.end,
            )
            interventions = await connection.fetch(
                f"""SELECT i.case_id, i.dimension, i.agency_code, i.amount_baht, i.status,
                           i.recorded_at >= ${len(args) + 1} AS in_quarter
                    FROM logbook.interventions i JOIN logbook.cases c USING (case_id)
                    WHERE {where} AND i.recorded_at < $1""",  # noqa: S608
                *args,
                start,
            )
            resolutions = await connection.fetch(
                f"""SELECT DISTINCT ON (r.case_id, r.dimension) r.case_id, r.dimension, r.resolution
                    FROM logbook.resolutions r JOIN logbook.cases c USING (case_id)
                    WHERE {where} AND r.recorded_at < $1
                    ORDER BY r.case_id, r.dimension, r.resolution_id DESC""",  # noqa: S608
                *args,
            )
        visit_counts = {r["case_id"]: (r["visits"], r["in_quarter"]) for r in visits}
        by_case: dict[str, list[InterventionFacts]] = {}
        for r in interventions:
            by_case.setdefault(r["case_id"], []).append(
                InterventionFacts(
                    Dimension(r["dimension"]),
                    r["agency_code"],
                    Decimal(r["amount_baht"]),
                    r["status"],
                    r["in_quarter"],
                )
            )
        resolved: dict[str, dict[Dimension, Resolution]] = {}
        for r in resolutions:
            resolved.setdefault(r["case_id"], {})[Dimension(r["dimension"])] = r["resolution"]
        return [
            CaseFacts(
                village_code=c["village_code"],
                reason=c["reason"],
                status=c["status"],
                deprived=tuple(dimensions_of(c["deprivation_bits"])),
                visits=visit_counts.get(c["case_id"], (0, 0))[0],
                visits_in_quarter=visit_counts.get(c["case_id"], (0, 0))[1],
                interventions=tuple(by_case.get(c["case_id"], ())),
                resolutions=resolved.get(c["case_id"], {}),
            )
            for c in cases
        ]

    # --- outbox (the relay) --------------------------------------------------------------------

    async def outbox_backlog(self) -> int:
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM logbook.outbox WHERE published_at IS NULL"
        )
        return count


def _returned(row: asyncpg.Record | None) -> dict[str, Any]:
    """The row an INSERT or UPDATE ... RETURNING gave back (one always comes back)."""
    if row is None:
        msg = "the statement returned no row"
        raise RuntimeError(msg)
    return dict(row)


def _user_row(row: asyncpg.Record) -> UserRow:
    return UserRow(
        User(row["user_id"], row["display_name"], row["role"], tuple(row["areas"])),
        row["created_at"],
        row["disabled_at"],
    )


async def _lock_case(connection: Db, case_id: str) -> None:
    await connection.execute("SELECT 1 FROM logbook.cases WHERE case_id = $1 FOR UPDATE", case_id)


async def _audit(
    connection: Db,
    actor: str,
    action: str,
    entity: tuple[str, str],
    *,
    case_id: str | None = None,
    village_code: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """One audit row: who (`actor`), what (`action` on `entity`: kind and ID), where, and the
    values before and after."""
    await connection.execute(
        """INSERT INTO logbook.audit (actor, action, entity, entity_id, case_id, village_code,
               before, after)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)""",
        actor,
        action,
        *entity,
        case_id,
        village_code,
        None if before is None else _json(before),
        None if after is None else _json(after),
    )


async def _outbox(connection: Db, topic: str, key: str, value: bytes) -> None:
    await connection.execute(
        "INSERT INTO logbook.outbox (topic, key, value) VALUES ($1, $2, $3)", topic, key, value
    )


async def _logbook_event(connection: Db, event: LogbookEvent) -> None:
    data = LogbookEventData(event=event)
    wrapped = envelope_json(
        LOGBOOK_EVENTS.require_event_type(),
        SOURCE,
        data,
        subject=event.household_id,
        time=event.occurred_at,
    )
    await _outbox(connection, LOGBOOK_EVENTS.name, event.household_id, wrapped)


def _event_base(case: CaseRow, actor: str, occurred_at: datetime) -> dict[str, Any]:
    return {
        "household_id": case.household_id,
        "survey_year": case.survey_year,
        "village_code": case.village_code,
        "case_id": case.case_id,
        "actor": actor,
        "occurred_at": occurred_at,
    }


async def _apply_households(connection: Db, messages: list[StatusMessage]) -> None:
    """Household statuses in order, each newer one moving its case on, as one at a time would;
    the batch's stored versions and cases are read, and its households written, once."""
    statuses: list[HouseholdStatus] = []
    for message in messages:
        try:
            statuses.append(_HOUSEHOLD_STATUS.model_validate_json(message.value or b"").data)
        except ValidationError as error:
            await _dead_letter(connection, message, str(error))
    keys = sorted({(s.household_id, s.survey_year) for s in statuses})
    rows = await connection.fetch(
        """SELECT household_id, survey_year, version FROM logbook.households
           WHERE (household_id, survey_year) IN
                 (SELECT * FROM unnest($1::text[], $2::int[]))
           ORDER BY household_id, survey_year FOR UPDATE""",
        [h for h, _ in keys],
        [y for _, y in keys],
    )
    versions = {(r["household_id"], r["survey_year"]): r["version"] for r in rows}
    # Each status newer than the household's before it, in order; older ones change nothing.
    moving: list[HouseholdStatus] = []
    for status in statuses:
        key = (status.household_id, status.survey_year)
        if is_newer(versions.get(key), status.version):
            versions[key] = status.version
            moving.append(status)
    newest = {(s.household_id, s.survey_year): s for s in moving}
    if not newest:
        return
    written = list(newest.values())
    await connection.execute(
        """INSERT INTO logbook.households AS h (household_id, survey_year, version, village_code, status)
           SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::jsonb[])
           ON CONFLICT (household_id, survey_year) DO UPDATE
             SET version = excluded.version, village_code = excluded.village_code,
                 status = excluded.status, updated_at = now()
             WHERE h.version < excluded.version""",
        [s.household_id for s in written],
        [s.survey_year for s in written],
        [s.version for s in written],
        [s.village_code for s in written],
        [s.model_dump_json() for s in written],
    )
    case_ids = sorted({case_id(h, y) for h, y in newest})
    cases = {
        r["case_id"]: CaseState(r["reason"], r["status"])
        for r in await connection.fetch(
            """SELECT case_id, reason, status FROM logbook.cases
               WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE""",
            case_ids,
        )
    }
    for status in moving:
        the_case_id = case_id(status.household_id, status.survey_year)
        state = await _move_case(connection, status, the_case_id, cases.get(the_case_id))
        if state is not None:
            cases[the_case_id] = state


async def _move_case(
    connection: Db, status: HouseholdStatus, the_case_id: str, current: CaseState | None
) -> CaseState | None:
    """The household's case after `status`: opened, changed or only updated (written with its
    audit row and logbook events); None when the household has and needs none."""
    change = next_case(current, status)
    state = change.state if change is not None else current
    if state is None:
        return None
    now = datetime.now(UTC)
    await connection.execute(
        """INSERT INTO logbook.cases (case_id, household_id, survey_year, reason, status,
               village_code, crisis, priority, deprivation_bits, opened_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
           ON CONFLICT (case_id) DO UPDATE
             SET reason = excluded.reason, status = excluded.status,
                 village_code = excluded.village_code, crisis = excluded.crisis,
                 priority = excluded.priority, deprivation_bits = excluded.deprivation_bits,
                 updated_at = excluded.updated_at""",
        the_case_id,
        status.household_id,
        status.survey_year,
        state.reason,
        state.status,
        status.village_code,
        status.crisis,
        status.priority,
        deprivation_bits(status.deprivation),
        now,
    )
    if change is None:
        return state
    await _audit(
        connection,
        SYSTEM,
        "case_opened" if current is None else "case_changed",
        ("case", the_case_id),
        case_id=the_case_id,
        village_code=status.village_code,
        before=None if current is None else {"reason": current.reason, "status": current.status},
        after={
            "reason": change.state.reason,
            "status": change.state.status,
            "household_version": status.version,
        },
    )
    base = {
        "household_id": status.household_id,
        "survey_year": status.survey_year,
        "village_code": status.village_code,
        "case_id": the_case_id,
        "actor": SYSTEM,
        "occurred_at": now,
    }
    if change.opened:
        await _logbook_event(connection, CaseOpened(**base, reason=change.state.reason))
    if change.status_changed:
        await _logbook_event(connection, CaseStatusChanged(**base, status=change.state.status))
    return state


async def _apply_persons(connection: Db, messages: list[StatusMessage]) -> None:
    """Person statuses, a batch in one statement: the newest version per person and year,
    written where it is newer than the stored one (person statuses are most of the traffic;
    a round trip each kept the consumer behind the matcher)."""
    newest: dict[tuple[str, int], PersonStatus] = {}
    for message in messages:
        try:
            status = _PERSON_STATUS.model_validate_json(message.value or b"").data
        except ValidationError as error:
            await _dead_letter(connection, message, str(error))
            continue
        key = (status.citizen_id, status.survey_year)
        if key not in newest or is_newer(newest[key].version, status.version):
            newest[key] = status
    if not newest:
        return
    statuses = list(newest.values())
    await connection.execute(
        """INSERT INTO logbook.persons AS p (citizen_id, survey_year, household_id, version, status)
           SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::jsonb[])
           ON CONFLICT (citizen_id, survey_year) DO UPDATE
             SET household_id = excluded.household_id, version = excluded.version,
                 status = excluded.status, updated_at = now()
             WHERE p.version < excluded.version""",
        [s.citizen_id for s in statuses],
        [s.survey_year for s in statuses],
        [s.household_id for s in statuses],
        [s.version for s in statuses],
        [s.model_dump_json() for s in statuses],
    )


async def _dead_letter(connection: Db, message: StatusMessage, error: str) -> None:
    """An unreadable message goes to logbook.dead-letter.v1 (through the outbox) and is skipped;
    once only, however often the topic is replayed."""
    first_time = await connection.fetchval(
        """INSERT INTO logbook.dead_letters (topic, partition, "offset", error)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        message.topic,
        message.partition,
        message.offset,
        error[:2000],
    )
    if not first_time:
        return
    value, encoding = text_or_base64(message.value or b"")
    key = (message.key or b"").decode("utf-8", errors="replace")
    letter = DeadLetter(
        consumer=CONSUMER_NAME,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key or None,
        value=value,
        value_encoding=encoding,
        error=error[:2000],
        failed_at=datetime.now(UTC),
    )
    wrapped = envelope_json(LOGBOOK_DEAD_LETTER.require_event_type(), SOURCE, letter, subject=key)
    await _outbox(connection, LOGBOOK_DEAD_LETTER.name, key, wrapped)
