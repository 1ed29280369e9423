"""Kafka adapter: sends a batch's messages as record batches, one or more per partition, through
aiokafka's batch API, and waits until Kafka has acknowledged them all.

A record at a time through Faust's producer (a future, a partitioner call and a queue entry per
record) cost more than the matcher's rules; a batch of records appended to one builder costs a
few microseconds a record. Partitions are chosen by the caller with Kafka's default partitioner
(`outbox.partition_for`), so a key lands where Faust's producer would have put it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

# Below the broker's default message.max.bytes (1 MB): a record batch is one message to it.
_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    key: bytes | None
    value: bytes


class RecordSender:
    """An idempotent producer (acks from every in-sync replica), made and started on first use:
    aiokafka's producer belongs to the event loop it was made in, which Faust starts later."""

    def __init__(self, bootstrap_servers: str, linger_ms: int) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap_servers,
                    client_id="tpmap-matcher-results",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=self._linger_ms,
                    max_batch_size=_BATCH_BYTES,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def send(self, records: Iterable[Record]) -> dict[tuple[str, int], int]:
        """Sends the records, in order within each partition; returns the offset of the last
        record written to each (topic, partition)."""
        producer = await self._started()
        by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for record in records:
            by_partition[record.topic, record.partition].append(record)
        sent = [
            (tp, count, future)
            for tp, group in by_partition.items()
            for count, future in await _send_partition(producer, tp, group)
        ]
        last: dict[tuple[str, int], int] = {}
        for tp, count, future in sent:
            base_offset: int = (await future).offset
            last[tp] = max(last.get(tp, -1), base_offset + count - 1)
        return last


async def _send_partition(
    producer: AIOKafkaProducer, tp: tuple[str, int], records: list[Record]
) -> list[tuple[int, asyncio.Future[Any]]]:
    """The records as record batches of at most _BATCH_BYTES: how many each holds, and the
    future of its acknowledgement."""
    topic, partition = tp
    submitted: list[tuple[int, asyncio.Future[Any]]] = []
    batch, count = producer.create_batch(), 0
    for record in records:
        # A full batch takes no more; a new one always takes its first record.
        if batch.append(key=record.key, value=record.value, timestamp=None) is None:
            submitted.append((count, await producer.send_batch(batch, topic, partition=partition)))
            batch, count = producer.create_batch(), 0
            batch.append(key=record.key, value=record.value, timestamp=None)
        count += 1
    submitted.append((count, await producer.send_batch(batch, topic, partition=partition)))
    return submitted
