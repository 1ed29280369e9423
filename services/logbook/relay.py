"""The outbox relay: publishes `logbook.outbox` to Kafka in order and marks rows published once
Kafka acknowledged them.

One relay publishes at a time (a PostgreSQL advisory lock held by its own connection; replicas
wait their turn), always the oldest unpublished rows first, through one idempotent `acks=all`
producer, so a household's events reach its partition in the order they were committed. With
Kafka down, writes go on committing to the outbox and the relay catches up when Kafka is back.

Delivery is at least once: a row is marked only after its ack, so if Kafka stored a message but
the ack was lost (a timeout, a crash between ack and mark), the row is published again. The copy
carries the same envelope `id`; consumers deduplicate by it.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.logbook.settings import LogbookSettings
from services.logbook.store import DATABASE_DOWN

log = logging.getLogger(__name__)

_LOCK_ID = 0x7470_6D61_0103  # the relay's advisory lock
_RETRY_SECONDS = 1.0


class KafkaUnavailableError(Exception):
    pass


class OutboxRelay:
    def __init__(self, settings: LogbookSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self.kafka_ok = False
        self.published = 0

    async def run(self) -> None:
        while True:
            try:
                await self._relay()
            except DATABASE_DOWN as error:
                log.warning("outbox relay restarts after a database error: %s", error)
                await asyncio.sleep(_RETRY_SECONDS)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _relay(self) -> None:
        connection = await asyncpg.connect(self._settings.database_url)
        try:
            while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_ID):
                await asyncio.sleep(_RETRY_SECONDS)
            log.info("outbox relay holds the lock")
            while True:
                rows = await connection.fetch(
                    """SELECT outbox_id, topic, key, value FROM logbook.outbox
                       WHERE published_at IS NULL ORDER BY outbox_id LIMIT $1""",
                    self._settings.relay_batch,
                )
                if not rows:
                    await self._check_kafka()
                    await asyncio.sleep(self._settings.relay_interval_seconds)
                    continue
                try:
                    await self._publish(rows)
                except KafkaUnavailableError as error:
                    self.kafka_ok = False
                    log.warning(
                        "outbox waits for Kafka", extra={"error": str(error), "rows": len(rows)}
                    )
                    await asyncio.sleep(_RETRY_SECONDS)
                    continue
                self.kafka_ok = True
                await connection.execute(
                    "UPDATE logbook.outbox SET published_at = now() WHERE outbox_id = ANY($1::bigint[])",
                    [r["outbox_id"] for r in rows],
                )
                self.published += len(rows)
                log.info("outbox published", extra={"count": len(rows)})
        finally:
            await connection.close()

    async def _check_kafka(self) -> None:
        """While idle, keep a producer started, so /readyz can say whether Kafka is there."""
        if self._producer is None:
            try:
                await self._producer_started()
            except KafkaUnavailableError:
                self.kafka_ok = False
                return
            self.kafka_ok = True

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        timeout = self._settings.kafka_timeout_seconds
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id="tpmap-logbook-relay",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=int(timeout * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), timeout)
        except (KafkaError, OSError, TimeoutError) as error:
            await producer.stop()
            raise KafkaUnavailableError(str(error) or type(error).__name__) from error
        self._producer = producer
        return producer

    async def _publish(self, rows: list[asyncpg.Record]) -> None:
        """Sends the rows in order and returns once Kafka acknowledged every one."""
        producer = await self._producer_started()
        timeout = self._settings.kafka_timeout_seconds
        try:
            futures = [
                await producer.send(r["topic"], bytes(r["value"]), key=r["key"].encode())
                for r in rows
            ]
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout
            )
        except (KafkaError, OSError, TimeoutError) as error:
            # The producer would retry these forever; a fresh one resends them from the outbox.
            await self._discard()
            raise KafkaUnavailableError(str(error) or type(error).__name__) from error
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self._discard()
            raise KafkaUnavailableError(str(failures[0]) or type(failures[0]).__name__)

    async def _discard(self) -> None:
        """Drops the producer with what it has not delivered (aiokafka has no call for this:
        cancelling its sender task is the way, as in ingest)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        sender = getattr(producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        if task is not None:
            task.cancel()
        try:
            await asyncio.wait_for(producer.stop(), self._settings.kafka_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as error:
            log.warning("discarded producer did not stop cleanly: %s", error)
