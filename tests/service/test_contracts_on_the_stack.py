"""A contracts envelope with Thai text through the real broker and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from services.contracts.events import Envelope, envelope
from services.contracts.records import BmnHousehold, parse_record
from services.contracts.topics import BMN_HOUSEHOLDS
from tests.synthetic import household

pytestmark = pytest.mark.stack

THAI_HOUSE_NO = "99/1 หมู่ 3 บ้านคำตุนาง"


def thai_envelope() -> Envelope[BmnHousehold]:
    record = parse_record(BmnHousehold, household(house_no=THAI_HOUSE_NO))
    return envelope(
        BMN_HOUSEHOLDS.require_event_type(), "/tests", record, subject=record.household_id
    )


async def test_envelope_with_thai_text_round_trips_through_kafka(kafka_bootstrap: str) -> None:
    topic = f"test.contracts.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [NewTopic(topic, num_partitions=BMN_HOUSEHOLDS.partitions, replication_factor=1)]
        )
    finally:
        admin.close()
    sent = thai_envelope()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    try:
        producer.send(
            topic, key=sent.data.household_id.encode(), value=sent.model_dump_json().encode()
        ).get(30)
    finally:
        producer.close()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        admin.delete_topics([topic])
        admin.close()
    assert message.key == sent.data.household_id.encode()
    received = Envelope[BmnHousehold].model_validate_json(message.value)
    assert received == sent
    assert received.data.house_no == THAI_HOUSE_NO


async def test_envelope_with_thai_text_round_trips_through_postgres(database_url: str) -> None:
    sent = thai_envelope()
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute(
                "CREATE TEMPORARY TABLE events (id text PRIMARY KEY, subject text, body jsonb) ON COMMIT DROP"
            )
            await connection.execute(
                "INSERT INTO events VALUES ($1, $2, $3::jsonb)",
                sent.id,
                sent.data.house_no,
                sent.model_dump_json(),
            )
            row = await connection.fetchrow(
                "SELECT subject, body::text AS body FROM events WHERE id = $1", sent.id
            )
        encoding = await connection.fetchval("SHOW server_encoding")
    finally:
        await connection.close()
    assert encoding == "UTF8"
    assert row is not None
    assert row["subject"] == THAI_HOUSE_NO
    assert Envelope[BmnHousehold].model_validate_json(row["body"]) == sent
