"""Kafka adapter: applies the matcher's person and household statuses and the logbook's events
(`logbook.events.v1`) to reporting's counters.

As in the logbook, offsets live in PostgreSQL (`reporting.consumer_offsets`), written in the
transaction that applies the messages: after a crash, a rebalance or a replay from the start,
nothing is counted twice. On every assignment the consumer seeks to the stored offsets (the
start of the topic for a partition it never saw); nothing is committed to Kafka, the group only
shares partitions between replicas. Statuses carry versions and logbook events IDs that are
applied once, so a message applied again would change nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.contracts.topics import (
    HOUSEHOLD_STATUS,
    LOGBOOK_EVENTS,
    PERSON_STATUS,
    TOPICS_BY_NAME,
)
from services.reporting.settings import ReportingSettings
from services.reporting.store import DATABASE_DOWN, LOCK_CONFLICTS, StatusMessage, Store

log = logging.getLogger(__name__)

TOPICS = (PERSON_STATUS.name, HOUSEHOLD_STATUS.name, LOGBOOK_EVENTS.name)
_RETRY_SECONDS = 2.0


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: AIOKafkaConsumer, store: Store) -> None:
        self._consumer = consumer
        self._store = store

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        stored = await self._store.stored_offsets((tp.topic, tp.partition) for tp in assigned)
        beginnings = await self._consumer.beginning_offsets(list(assigned))
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            self._consumer.seek(tp, max(offset if offset is not None else 0, beginnings[tp]))
        log.info("partitions assigned", extra={"partitions": len(assigned)})


class StatusConsumer:
    def __init__(self, settings: ReportingSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self.applied = 0

    async def run(self) -> None:
        """Applies statuses and logbook events until cancelled; after any Kafka or database error
        it starts afresh from the stored offsets."""
        while True:
            try:
                await self._consume()
            except (KafkaError, *DATABASE_DOWN, *LOCK_CONFLICTS) as error:
                log.warning("status consumer restarts after: %s", error)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._settings.consumer_group,
            client_id="tpmap-reporting",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe(list(TOPICS), listener=_SeekToStored(consumer, self._store))
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(
                    timeout_ms=500, max_records=self._settings.consumer_batch
                )
                for tp, records in batches.items():
                    messages = [
                        StatusMessage(tp.topic, tp.partition, r.offset, r.key, r.value)
                        for r in records
                    ]
                    applied = await self._store.apply(messages)
                    self.applied += applied
                    if applied:
                        log.info(
                            "applied messages",
                            extra={"topic": tp.topic, "partition": tp.partition, "count": applied},
                        )
        finally:
            await consumer.stop()


class TopicEnds:
    """The end offsets of the consumed topics (for the consumer's lag), asked of the broker by a
    consumer of no group; None while the broker cannot be asked."""

    def __init__(self, settings: ReportingSettings, timeout_seconds: float = 5.0) -> None:
        self._settings = settings
        self._timeout = timeout_seconds
        self._consumer: AIOKafkaConsumer | None = None

    async def get(self) -> dict[tuple[str, int], int] | None:
        try:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self._settings.kafka_bootstrap_servers,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id="tpmap-reporting-freshness",
                )
                await asyncio.wait_for(consumer.start(), self._timeout)
                self._consumer = consumer
            partitions = [
                TopicPartition(topic, p)
                for topic in TOPICS
                for p in range(TOPICS_BY_NAME[topic].partitions)
            ]
            ends = await asyncio.wait_for(self._consumer.end_offsets(partitions), self._timeout)
        except (KafkaError, TimeoutError, OSError) as error:
            log.warning("cannot ask the broker for end offsets: %s", error)
            await self.close()
            return None
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()
