"""Publishes changed areas to `reporting.area-aggregates.v1` (compacted, key `year:area`).

The consumer marks every area whose counters it changed in `reporting.dirty_areas`, in the
transaction that changes them. The publisher, in rounds a fixed interval apart, reads the dirty
areas, publishes each one's current `AreaAggregate` (idempotent producer, acks from all
replicas) and then clears the rows that did not change again meanwhile. So a busy area is sent
at most once a round (coalesced), a change is never left unpublished, and a crash only sends an
area again. One replica publishes at a time (a PostgreSQL advisory lock), so two publishers
never race to leave an older aggregate last on a key.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.contracts.events import envelope_json
from services.contracts.topics import AREA_AGGREGATES
from services.reporting.aggregates import area_aggregate
from services.reporting.settings import ReportingSettings
from services.reporting.store import DATABASE_DOWN, LOCK_CONFLICTS, Store

log = logging.getLogger(__name__)

SOURCE = "/reporting"
_LOCK_ID = 0x7470_6D61_0104  # the publisher's leadership among replicas
_RETRY_SECONDS = 2.0


class AreaPublisher:
    def __init__(self, settings: ReportingSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self.published = 0

    async def run(self) -> None:
        """Publishes until cancelled; after a Kafka or database error it starts afresh."""
        while True:
            try:
                await self._lead()
            except (KafkaError, *DATABASE_DOWN, *LOCK_CONFLICTS) as error:
                log.warning("area publisher restarts after: %s", error)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _lead(self) -> None:
        async with self._store.leadership(_LOCK_ID, _RETRY_SECONDS) as leader:
            log.info("area publisher leads")
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                client_id="tpmap-reporting-publisher",
                acks="all",
                enable_idempotence=True,
            )
            await producer.start()
            try:
                while True:
                    await leader.check()
                    await self._round(producer)
                    await asyncio.sleep(self._settings.publish_interval_seconds)
            finally:
                await producer.stop()

    async def _round(self, producer: AIOKafkaProducer) -> None:
        dirty = await self._store.dirty_areas(self._settings.publish_batch)
        if not dirty:
            return
        sent = []
        for area in dirty:
            stored = await self._store.area_counters(area.survey_year, area.area_code)
            event = area_aggregate(
                area.survey_year, area.area_code, stored.counters, stored.as_of or datetime.now(UTC)
            )
            key = f"{area.survey_year}:{area.area_code}"
            value = envelope_json(AREA_AGGREGATES.require_event_type(), SOURCE, event, subject=key)
            sent.append(await producer.send(AREA_AGGREGATES.name, key=key.encode(), value=value))
        await asyncio.gather(*sent)
        await self._store.published(dirty)
        self.published += len(dirty)
        log.info("published areas", extra={"count": len(dirty)})
