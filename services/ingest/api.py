"""HTTP adapter of the ingest service (FastAPI): the agencies' door to the platform."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.contracts.process import exit_when_stopped, freeze_startup_heap
from services.contracts.records import FieldError
from services.ingest.api_keys import Agency
from services.ingest.examples import component_schemas, request_body
from services.ingest.framing import (
    RawRecord,
    RequestRejectedError,
    csv_records,
    json_array_records,
    ndjson_records,
)
from services.ingest.publisher import KafkaUnavailableError, Publisher
from services.ingest.raw_topics import RawTopicValidator
from services.ingest.settings import IngestSettings
from services.ingest.sources import SOURCES, Source
from services.ingest.store import (
    ABANDONED_CLAIM_MINUTES,
    DATABASE_DOWN,
    ClaimConflictError,
    Store,
)
from services.ingest.validation import (
    Rejection,
    record_rejection_message,
    rejection_message,
    validate,
)

log = logging.getLogger("services.ingest")

JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
MEDIA_TYPES = (JSON, NDJSON, CSV)
MAX_IDEMPOTENCY_KEY = 200
_RELEASE_RETRY_SECONDS = 1.0
# What a request-level rejection keeps of the body on ingest.rejected.v1.
KEPT_BODY_BYTES = 512 * 1024


class RejectionReport(BaseModel):
    index: int | None = Field(description="Position of the record in the request, from 0")
    line: int | None = Field(description="Line of the record in NDJSON or CSV, from 1")
    errors: list[FieldError]


class IngestReply(BaseModel):
    accepted: int = Field(description="Records validated and acknowledged by Kafka")
    rejected: list[RejectionReport] = Field(
        description="Refused records (the first ones, see rejected_count)"
    )
    rejected_count: int = Field(description="All refused records; each is on ingest.rejected.v1")
    request_id: str


class ErrorReply(BaseModel):
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    request_id: str


def _reply(status: int, body: BaseModel, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body.model_dump_json().encode(), status_code=status, media_type=JSON, headers=headers
    )


@dataclass
class _HttpError(Exception):
    status: int
    detail: str
    errors: list[FieldError] | None = None
    headers: dict[str, str] | None = None
    field: str = "(body)"

    def reply_errors(self) -> list[FieldError]:
        return self.errors or [FieldError(field=self.field, message=self.detail)]


class _Body:
    """The request body as chunks, counting bytes against the upload limit; keeps the first bytes
    for the rejected topic in case the body as a whole is refused."""

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self.limit = limit
        self.advice = ""
        self.size = 0
        self.head = b""
        self._started = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self._started = True
        async for chunk in self._request.stream():
            self.size += len(chunk)
            if self.size > self.limit:
                raise _HttpError(
                    413, f"request body is over the {self.limit}-byte limit{self.advice}"
                )
            if len(self.head) < KEPT_BODY_BYTES:
                self.head = (self.head + chunk)[:KEPT_BODY_BYTES]
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def keep_head(self) -> bytes:
        """The first bytes of a body refused before it was read (only those are read)."""
        if not self._started:
            self._started = True
            async for chunk in self._request.stream():
                self.size += len(chunk)
                self.head = (self.head + chunk)[:KEPT_BODY_BYTES]
                if len(self.head) >= KEPT_BODY_BYTES:
                    break
        return self.head


async def _records(
    source: Source, media_type: str, body: _Body, max_record_bytes: int
) -> AsyncIterator[RawRecord]:
    if media_type == NDJSON:
        records = ndjson_records(body.chunks(), max_record_bytes)
    elif media_type == CSV:
        records = csv_records(body.chunks(), source, max_record_bytes)
    else:
        for record in json_array_records(await body.read(), max_record_bytes):
            yield record
        return
    async for record in records:
        yield record


def _media_type(request: Request) -> str:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise _HttpError(
            415,
            f"content type {media_type or '(none)'!r} is not supported; use {', '.join(MEDIA_TYPES)}",
        )
    return media_type


class IngestService:
    """Everything a request needs: settings, keys and replies in PostgreSQL, the Kafka producer."""

    def __init__(self, settings: IngestSettings, store: Store, publisher: Publisher) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self._releases: set[asyncio.Task[None]] = set()

    def release_when_possible(self, agency: str, idempotency_key: str) -> None:
        """Forgets an unfinished claim as soon as PostgreSQL answers again: a request that failed
        because it was down must not hold its Idempotency-Key until the claim expires."""
        task = asyncio.create_task(self._release(agency, idempotency_key))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, agency: str, idempotency_key: str) -> None:
        deadline = time.monotonic() + ABANDONED_CLAIM_MINUTES * 60  # expired by then anyway
        while time.monotonic() < deadline:
            try:
                await self.store.release(agency, idempotency_key)
            except DATABASE_DOWN:
                await asyncio.sleep(_RELEASE_RETRY_SECONDS)
            else:
                return

    async def authenticate(self, request: Request, source: Source) -> Agency:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        agency = await self.store.agency_for(token.strip()) if scheme.lower() == "bearer" else None
        if agency is None:
            raise _HttpError(
                401,
                "a valid API key is required: Authorization: Bearer tpk_...",
                headers={"WWW-Authenticate": "Bearer"},
                field="(authorization)",
            )
        if source.name not in agency.sources:
            raise _HttpError(
                403,
                f"this key of {agency.name} may not send {source.name} records",
                field="(authorization)",
            )
        return agency

    async def ingest(
        self, request: Request, source: Source, agency: Agency, request_id: str
    ) -> IngestReply:
        """Validates and publishes every record of the body; returns once all are acknowledged.
        A body refused as a whole still goes to ingest.rejected.v1 (its first bytes)."""
        body = _Body(request, self.settings.max_body_bytes)
        try:
            return await self._publish_records(request, source, agency, request_id, body)
        except RequestRejectedError as refused:
            await self._keep_refused_body(source, agency, request_id, body, refused.errors)
            raise _HttpError(400, refused.message, refused.errors) from None
        except _HttpError as error:
            await self._keep_refused_body(source, agency, request_id, body, error.reply_errors())
            raise

    async def _publish_records(
        self, request: Request, source: Source, agency: Agency, request_id: str, body: _Body
    ) -> IngestReply:
        settings = self.settings
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body.limit:
            raise _HttpError(
                413, f"request body of {declared} bytes is over the {body.limit}-byte limit"
            )
        media_type = _media_type(request)
        if media_type == JSON:
            # A JSON array is parsed whole, so it has a smaller limit than the streamed formats.
            body.limit = min(settings.max_json_body_bytes, body.limit)
            body.advice = (
                "; send large batches as application/x-ndjson or text/csv, which are streamed"
            )
        received_at = datetime.now(UTC)
        origin = f"/ingest/{agency.name}"
        batch = self.publisher.batch()
        accepted, rejected = 0, 0
        reports: list[RejectionReport] = []
        async for raw in _records(source, media_type, body, settings.max_record_bytes):
            outcome = validate(source, raw, origin, received_at)
            if isinstance(outcome, Rejection):
                rejected += 1
                if len(reports) < settings.max_reported_rejections:
                    reports.append(
                        RejectionReport(
                            index=outcome.index, line=outcome.line, errors=list(outcome.errors)
                        )
                    )
                await batch.send(
                    record_rejection_message(
                        source,
                        raw,
                        outcome,
                        agency=agency.name,
                        channel="http",
                        request_id=request_id,
                        received_at=received_at,
                    )
                )
            else:
                accepted += 1
                await batch.send(outcome)
        await batch.wait()
        return IngestReply(
            accepted=accepted, rejected=reports, rejected_count=rejected, request_id=request_id
        )

    async def _keep_refused_body(
        self, source: Source, agency: Agency, request_id: str, body: _Body, errors: list[FieldError]
    ) -> None:
        """A body refused as a whole still goes to ingest.rejected.v1 (its first bytes)."""
        await self.publisher.send_all(
            [
                rejection_message(
                    source,
                    agency=agency.name,
                    channel="http",
                    request_id=request_id,
                    index=None,
                    line=None,
                    payload=await body.keep_head(),
                    payload_bytes=max(body.size, len(body.head)),
                    errors=errors,
                    received_at=datetime.now(UTC),
                )
            ]
        )


Handler = Callable[[Request], Awaitable[Response]]


def _database_unavailable(request_id: str, error: Exception) -> Response:
    """503 while PostgreSQL (API keys, Idempotency-Keys) cannot be reached. Records already
    published stay published: a resend with the same Idempotency-Key gets the stored reply, or
    claims the key again once the unfinished claim has expired (event IDs make the copies
    harmless downstream)."""
    log.warning("database unavailable", extra={"request_id": request_id, "error": str(error)})
    return _reply(
        503,
        ErrorReply(
            detail="the database is unavailable; send the request again later",
            request_id=request_id,
        ),
        {"Retry-After": "5"},
    )


def _ingest_handler(source: Source) -> Handler:
    async def handle(request: Request) -> Response:
        service: IngestService = request.app.state.service
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        idempotency_key = request.headers.get("idempotency-key")
        claimed: tuple[str, str] | None = None  # (agency, Idempotency-Key) this request holds
        try:
            agency = await service.authenticate(request, source)
            if idempotency_key is not None:
                if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                    raise _HttpError(
                        400, f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters"
                    )
                fingerprint = f"POST {source.path} {request.headers.get('content-type', '')}"
                replay = await service.store.claim(agency.name, idempotency_key, fingerprint)
                if replay is not None:
                    return Response(
                        replay.body,
                        replay.status_code,
                        media_type=JSON,
                        headers={"Idempotent-Replayed": "true"},
                    )
                claimed = (agency.name, idempotency_key)
            reply = await service.ingest(request, source, agency, request_id)
            response = _reply(200, reply)
            log.info(
                "ingested",
                extra={
                    "request_id": request_id,
                    "agency": agency.name,
                    "source": source.name,
                    "accepted": reply.accepted,
                    "rejected": reply.rejected_count,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
        except ClaimConflictError as conflict:
            return _reply(409, ErrorReply(detail=str(conflict), request_id=request_id))
        except _HttpError as error:
            response = _reply(
                error.status,
                ErrorReply(detail=error.detail, errors=error.reply_errors(), request_id=request_id),
                error.headers,
            )
            log.info(
                "refused",
                extra={"request_id": request_id, "status": error.status, "detail": error.detail},
            )
        except KafkaUnavailableError as error:
            log.warning("kafka unavailable", extra={"request_id": request_id, "error": str(error)})
            if claimed is not None:
                await service.store.release(*claimed)
            return _reply(
                503,
                ErrorReply(
                    detail="Kafka is unavailable; nothing of this request is accepted, send it again later",
                    request_id=request_id,
                ),
                {"Retry-After": "5"},
            )
        except DATABASE_DOWN as error:
            if claimed is not None:
                service.release_when_possible(*claimed)
            return _database_unavailable(request_id, error)
        if claimed is not None:
            try:
                await service.store.complete(*claimed, response.status_code, bytes(response.body))
            except DATABASE_DOWN as error:
                service.release_when_possible(*claimed)
                return _database_unavailable(request_id, error)
        return response

    return handle


def create_app(settings: IngestSettings) -> FastAPI:
    """The ingest app; PostgreSQL and Kafka are connected on startup."""
    publisher = Publisher(
        settings.kafka_bootstrap_servers, settings.kafka_timeout_seconds, settings.max_in_flight
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.connect(settings.database_url)
        app.state.service = IngestService(settings, store, publisher)
        background: list[asyncio.Task[None]] = []
        if settings.raw_consumer:
            validator = RawTopicValidator(settings, publisher)
            background.append(asyncio.create_task(validator.run(), name="raw-topics"))
        background.append(
            asyncio.create_task(_expire_replies(store, settings.idempotency_ttl_hours))
        )
        for task in background:
            exit_when_stopped(task)
        freeze_startup_heap()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await publisher.close()
            await store.close()

    app = FastAPI(
        title="tpmap ingest",
        version="1",
        description=(
            "The door for agency records: BMN households (CDD), welfare registrations (MOF) and civil "
            "events (DOPA). Every record is validated; valid ones are published to Kafka, refused ones "
            "are kept on ingest.rejected.v1 with the reasons.\n\n"
            "ประตูรับข้อมูลจากหน่วยงาน: ครัวเรือน จปฐ. (พช.), การลงทะเบียนบัตรสวัสดิการแห่งรัฐ (กค.) "
            "และเหตุการณ์ทะเบียนราษฎร์ (ปค.) ทุกระเบียนได้รับการตรวจสอบก่อนเผยแพร่"
        ),
        lifespan=lifespan,
    )

    for source in SOURCES.values():
        app.add_api_route(
            source.path,
            _ingest_handler(source),
            methods=["POST"],
            summary=f"Send {source.name} records ({source.agency_label})",
            response_model=IngestReply,
            responses={
                400: {"model": ErrorReply, "description": "The body as a whole cannot be read"},
                401: {"model": ErrorReply, "description": "No valid API key"},
                403: {"model": ErrorReply, "description": "The key may not send this source"},
                409: {"model": ErrorReply, "description": "Idempotency-Key in use"},
                413: {"model": ErrorReply, "description": "Body over the size limit"},
                415: {"model": ErrorReply, "description": "Unknown content type"},
                503: {
                    "model": ErrorReply,
                    "description": "Kafka unavailable: nothing accepted, resend later",
                },
            },
            openapi_extra={"requestBody": request_body(source)},
            tags=[source.name],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                component_schemas()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Kafka and PostgreSQL are reachable")
    async def readyz() -> Response:
        kafka = await publisher.ready()
        try:
            await app.state.service.store.ping()
            database = True
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("database unreachable: %s", error)
            database = False
        ok = kafka and database
        body: dict[str, Any] = {
            "status": "ready" if ok else "not ready",
            "kafka": kafka,
            "postgres": database,
        }
        return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type=JSON)

    return app


async def _expire_replies(store: Store, ttl_hours: int) -> None:
    while True:
        try:
            removed = await store.expire_replies(ttl_hours)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("could not expire idempotent replies: %s", error)
        else:
            if removed:
                log.info("expired idempotent replies", extra={"count": removed})
        await asyncio.sleep(3600)
