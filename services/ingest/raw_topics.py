"""Kafka adapter for agencies that produce straight to Kafka: records on ingest.raw.*.v1 go
through the same validation as HTTP and are republished or rejected. At least once: offsets are
committed only after Kafka acknowledged what they produced, and a replay yields the same event
IDs, which consumers recognise."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

from services.contracts.records import FieldError
from services.ingest.framing import RECORD, RawRecord
from services.ingest.publisher import KafkaUnavailableError, Publisher
from services.ingest.settings import IngestSettings
from services.ingest.sources import SOURCES_BY_RAW_TOPIC
from services.ingest.validation import Message, Rejection, record_rejection_message, validate

log = logging.getLogger(__name__)

GROUP_ID = "tpmap-ingest-raw"
AGENCY_HEADER = "agency"
UNKNOWN_AGENCY = "unknown"
_RETRY_SECONDS = 2.0


def _agency(message: ConsumerRecord[bytes, bytes]) -> str:
    for name, value in message.headers or ():
        if name == AGENCY_HEADER and value:
            return str(value.decode("utf-8", errors="replace"))[:64]
    return UNKNOWN_AGENCY


def message_for(message: ConsumerRecord[bytes, bytes], max_record_bytes: int) -> Message:
    """What one raw message becomes: its envelope on the validated topic, or a rejection."""
    source = SOURCES_BY_RAW_TOPIC[message.topic]
    agency = _agency(message)
    value = message.value or b""
    problems: tuple[FieldError, ...] = ()
    if not value:
        problems = (FieldError(field=RECORD, message="empty message"),)
    elif len(value) > max_record_bytes:
        problems = (
            FieldError(
                field=RECORD,
                message=f"record is {len(value)} bytes; the limit is {max_record_bytes}",
            ),
        )
    raw = RawRecord(None, None, value[:max_record_bytes], len(value), problems=problems)
    received_at = datetime.now(UTC)
    outcome = validate(source, raw, f"/ingest/kafka/{agency}", received_at)
    if isinstance(outcome, Rejection):
        return record_rejection_message(
            source,
            raw,
            outcome,
            agency=agency,
            channel="kafka",
            request_id=f"{message.topic}:{message.partition}:{message.offset}",
            received_at=received_at,
        )
    return outcome


class RawTopicValidator:
    def __init__(self, settings: IngestSettings, publisher: Publisher) -> None:
        self._settings = settings
        self._publisher = publisher

    async def run(self) -> None:
        """Validates raw topics until cancelled; restarts from the committed offsets after an error."""
        while True:
            try:
                await self._consume()
            except (KafkaError, KafkaUnavailableError, OSError) as error:
                log.warning("raw topic validator restarts after: %s", error)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            *SOURCES_BY_RAW_TOPIC,
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=GROUP_ID,
            client_id="tpmap-ingest-raw",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                if not batches:
                    continue
                messages = [
                    message_for(m, self._settings.max_record_bytes)
                    for records in batches.values()
                    for m in records
                ]
                await self._publisher.send_all(messages)
                await consumer.commit()
                log.info("validated raw records", extra={"count": len(messages)})
        finally:
            await consumer.stop()
