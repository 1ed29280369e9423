"""`GET /v1/stream`: Server-Sent Events of areas' figures, a snapshot on connect and then every
change, resumable with `Last-Event-ID`.

Every API replica reads the compacted `reporting.area-aggregates.v1` from its beginning with a
consumer of no group (each replica needs every area, and nothing is committed), keeps the newest
message of each area in memory, and hands new messages to the connected clients that follow
their areas. Why the topic and not PostgreSQL: the publisher already coalesces changes and sends
each changed area's whole aggregate, the topic's offsets give event IDs that mean the same on
every replica (`stream_feed.py`), and clients cost the database nothing. A change reaches a
client within the publisher's round (0.25 s) plus one fetch from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from services.contracts.areas import COUNTRY_CODE
from services.contracts.topics import AREA_AGGREGATES
from services.reporting.contributions import ALL_DIMENSIONS_MASK, CardFilter
from services.reporting.settings import ReportingSettings
from services.reporting.store import Store
from services.reporting.stream_feed import (
    SSE_KEEPALIVE,
    AreaMessage,
    AreaSelection,
    FeedState,
    Pending,
    Position,
    area_payload,
    sse,
    sse_retry,
)

log = logging.getLogger(__name__)

_RETRY_SECONDS = 2.0
_KEEPALIVE_SECONDS = 15.0
_RECONNECT_MILLISECONDS = 1000
# How long a client waits for this replica to have read the topic to its end (after a start),
# or to reach the position a client resumes from (another replica may be a little ahead).
_LOADING_SECONDS = 10.0
_CATCH_UP_SECONDS = 5.0


class Subscriber:
    """One connected client: what it follows and what it has not been sent yet."""

    def __init__(self, selection: AreaSelection) -> None:
        self.selection = selection
        self.pending = Pending()
        self.wake = asyncio.Event()


class AggregateFeed:
    """Reads `reporting.area-aggregates.v1` into a `FeedState` and tells subscribers of the
    areas they follow."""

    def __init__(self, settings: ReportingSettings) -> None:
        self._settings = settings
        self.state = FeedState(AREA_AGGREGATES.partitions)
        self.loaded = asyncio.Event()
        self._progressed = asyncio.Condition()
        self._subscribers: set[Subscriber] = set()

    async def run(self) -> None:
        """Reads until cancelled; after a Kafka error it goes on from the position reached."""
        while True:
            try:
                await self._read()
            except KafkaError as error:
                log.warning("aggregate feed restarts after: %s", error)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=None,
            client_id="tpmap-reporting-stream",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # compaction may have removed the offsets we ask for
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(AREA_AGGREGATES.name, p) for p in range(AREA_AGGREGATES.partitions)
            ]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, self.state.position.next_offsets[tp.partition])
            ends = await consumer.end_offsets(partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp.partition, record.offset, record.key, record.value)
                if not self.loaded.is_set():
                    positions = [await consumer.position(tp) for tp in partitions]
                    if all(at >= ends[tp] for at, tp in zip(positions, partitions, strict=True)):
                        log.info("aggregate feed loaded", extra={"areas": len(self.state)})
                        self.loaded.set()
                if batches:
                    async with self._progressed:
                        self._progressed.notify_all()
        finally:
            await consumer.stop()

    def _take(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        message = self.state.apply(partition, offset, key, value)
        if message is None:
            return
        for subscriber in self._subscribers:
            if subscriber.selection.wants(message.key):
                subscriber.pending.add(message, self.state.position)
                subscriber.wake.set()

    async def reached(self, position: Position) -> bool:
        """Waits (a few seconds at most) until the feed has read up to `position`."""
        async with self._progressed:
            try:
                await asyncio.wait_for(
                    self._progressed.wait_for(lambda: self.state.position.reaches(position)),
                    _CATCH_UP_SECONDS,
                )
            except TimeoutError:
                return False
        return True

    def subscribe(
        self, selection: AreaSelection, since: Position | None
    ) -> tuple[list[AreaMessage], Position, Subscriber]:
        """What a client at `since` has not seen of `selection`, the position that covers it, and
        a subscriber for what comes next: all taken at one moment (no await), so nothing read
        in between is lost or sent twice."""
        subscriber = Subscriber(selection)
        self._subscribers.add(subscriber)
        return self.state.selected(selection, since), self.state.position, subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)


def _area_event(message: AreaMessage, mask: str, card: CardFilter, event_id: str | None) -> bytes:
    try:
        return sse("area", area_payload(message, mask, card), event_id)
    except ValueError as error:  # an unreadable aggregate: the others still go out
        log.warning("unreadable area aggregate", extra={"key": message.key, "error": str(error)})
        return b""


async def _events(
    feed: AggregateFeed,
    selection: AreaSelection,
    since: Position | None,
    mask: str,
    card: CardFilter,
) -> AsyncIterator[bytes]:
    initial, position, subscriber = feed.subscribe(selection, since)
    try:
        yield sse_retry(_RECONNECT_MILLISECONDS)
        # No IDs until `ready`: a client cut off inside the snapshot resumes from before it.
        for message in initial:
            yield _area_event(message, mask, card, None)
        ready = {
            "survey_year": selection.survey_year,
            "areas": len(initial),
            "resumed": since is not None,
            "mask": mask,
            "card": card,
        }
        yield sse("ready", ready, position.encode())
        while True:
            try:
                await asyncio.wait_for(subscriber.wake.wait(), _KEEPALIVE_SECONDS)
            except TimeoutError:
                yield SSE_KEEPALIVE
                continue
            subscriber.wake.clear()
            for message, after in subscriber.pending.take():
                yield _area_event(message, mask, card, after.encode())
    finally:
        feed.unsubscribe(subscriber)


def stream_router(settings: ReportingSettings) -> APIRouter:
    """The `/v1/stream` route, with the feed it reads started and stopped with the app."""
    feed = AggregateFeed(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(feed.run(), name="aggregate-feed")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    router = APIRouter(lifespan=lifespan)

    @router.get(
        "/v1/stream",
        tags=["figures"],
        summary="Server-Sent Events: the areas' figures on connect, then every change",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request,
        *,
        year: Annotated[
            int | None, Query(description="Survey year (BE); the latest counted when omitted")
        ] = None,
        areas: Annotated[
            str,
            Query(
                description="Comma-separated area codes; a trailing * for the area's children "
                "(TH,TH*,49,49*: the country, every province, Mukdahan and its districts)"
            ),
        ] = COUNTRY_CODE,
        mask: Annotated[str, Query(pattern=r"^[01]{5}$")] = ALL_DIMENSIONS_MASK,
        card: CardFilter = "all",
        last_event_id: Annotated[
            str | None, Header(description="The last event's ID: resume after it")
        ] = None,
    ) -> StreamingResponse:
        """Events: `area` (an area's figures, as `GET /v1/areas/{code}` answers them but for
        `deceased` and `unplaced`, which the aggregates topic does not carry), `ready` (the
        snapshot or the changes missed are sent). IDs hold for the same query only."""
        if year is None:
            store: Store = request.app.state.store
            counted = await store.years()
            if not counted:
                raise HTTPException(404, "no survey year has been counted yet")
            year = counted[-1]
        try:
            selection = AreaSelection.parse(year, areas)
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        try:
            await asyncio.wait_for(feed.loaded.wait(), _LOADING_SECONDS)
        except TimeoutError as error:
            raise HTTPException(
                503, "the area aggregates are still being read", headers={"Retry-After": "2"}
            ) from error
        since = Position.decode(last_event_id, AREA_AGGREGATES.partitions)
        if since is not None and not await feed.reached(since):
            since = None  # an ID this topic never reached (recreated?): a whole snapshot
        return StreamingResponse(
            _events(feed, selection, since, mask, card),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
