"""PostgreSQL adapter of the ingest service: agency keys and idempotent replies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from services.ingest.api_keys import Agency, NewKey, secret_matches, split_token

_MIGRATIONS = Path(__file__).parent / "migrations"
# A claim older than this belongs to a worker that died mid-request; another may take it over.
ABANDONED_CLAIM_MINUTES = 15


def migrate(database_url: str) -> None:
    """Applies the ingest schema's migrations (alembic, blocking)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    )
    command.upgrade(config, "head")


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    agency: str
    sources: list[str]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Replay:
    """The stored reply to an earlier request with the same Idempotency-Key."""

    status_code: int
    body: bytes


# PostgreSQL is unreachable or restarting: answer 503 so the client sends again later; nothing
# is wrong with the request itself.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    # A connection cut mid-query (PostgreSQL restarting) fails its reset on release this way.
    asyncpg.InternalClientError,
)


class ClaimConflictError(Exception):
    """The key is in use by a request still running, or by a different request."""


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, database_url: str) -> Store:
        return cls(await asyncpg.create_pool(database_url, min_size=1, max_size=10))

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    # --- keys ----------------------------------------------------------------------------------

    async def add_key(
        self, key: NewKey, agency: str, sources: list[str], note: str | None = None
    ) -> None:
        await self._pool.execute(
            "INSERT INTO ingest.api_keys (key_id, agency, sources, secret_sha256, note) VALUES ($1, $2, $3, $4, $5)",
            key.key_id,
            agency,
            sources,
            key.secret_sha256,
            note,
        )

    async def agency_for(self, token: str) -> Agency | None:
        """The agency a token belongs to, if it is valid and not revoked."""
        parts = split_token(token)
        if parts is None:
            return None
        key_id, secret = parts
        row = await self._pool.fetchrow(
            "SELECT agency, sources, secret_sha256 FROM ingest.api_keys WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None or not secret_matches(secret, row["secret_sha256"]):
            return None
        return Agency(key_id, row["agency"], frozenset(row["sources"]))

    async def list_keys(self) -> list[KeyRow]:
        rows = await self._pool.fetch(
            "SELECT key_id, agency, sources, created_at, revoked_at FROM ingest.api_keys ORDER BY created_at"
        )
        return [
            KeyRow(r["key_id"], r["agency"], r["sources"], r["created_at"], r["revoked_at"])
            for r in rows
        ]

    async def revoke_key(self, key_id: str) -> bool:
        status = await self._pool.execute(
            "UPDATE ingest.api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        return bool(status.endswith(" 1"))

    # --- idempotency ---------------------------------------------------------------------------

    async def claim(self, agency: str, idempotency_key: str, fingerprint: str) -> Replay | None:
        """Claims the key for this request (None), or returns the reply stored for it.

        Raises ClaimConflictError when another request holds the key or it was used for a
        different request."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """
                INSERT INTO ingest.idempotent_requests (agency, idempotency_key, fingerprint)
                VALUES ($1, $2, $3)
                ON CONFLICT (agency, idempotency_key) DO UPDATE
                    SET claimed_at = now()
                    WHERE idempotent_requests.completed_at IS NULL
                      AND idempotent_requests.fingerprint = excluded.fingerprint
                      AND idempotent_requests.claimed_at < now() - make_interval(mins => $4)
                RETURNING true AS claimed
                """,
                agency,
                idempotency_key,
                fingerprint,
                ABANDONED_CLAIM_MINUTES,
            )
            if row is not None:
                return None
            existing = await connection.fetchrow(
                """SELECT fingerprint, status_code, response FROM ingest.idempotent_requests
                   WHERE agency = $1 AND idempotency_key = $2""",
                agency,
                idempotency_key,
            )
        if existing is None or existing["fingerprint"] != fingerprint:
            msg = "this Idempotency-Key was used for a different request"
            raise ClaimConflictError(msg)
        if existing["status_code"] is None:
            msg = "a request with this Idempotency-Key is still being processed"
            raise ClaimConflictError(msg)
        return Replay(existing["status_code"], bytes(existing["response"]))

    async def complete(
        self, agency: str, idempotency_key: str, status_code: int, body: bytes
    ) -> None:
        await self._pool.execute(
            """UPDATE ingest.idempotent_requests SET status_code = $3, response = $4, completed_at = now()
               WHERE agency = $1 AND idempotency_key = $2""",
            agency,
            idempotency_key,
            status_code,
            body,
        )

    async def release(self, agency: str, idempotency_key: str) -> None:
        """Forgets an unfinished claim, so the client may retry (after a 5xx)."""
        await self._pool.execute(
            """DELETE FROM ingest.idempotent_requests
               WHERE agency = $1 AND idempotency_key = $2 AND completed_at IS NULL""",
            agency,
            idempotency_key,
        )

    async def expire_replies(self, ttl_hours: int) -> int:
        status = await self._pool.execute(
            "DELETE FROM ingest.idempotent_requests WHERE claimed_at < now() - make_interval(hours => $1)",
            ttl_hours,
        )
        return int(status.split()[-1])
