"""Ingest with Kafka itself: the raw-topic path, and a broker that stops and comes back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.contracts.events import Envelope, RejectedRecord
from services.contracts.records import BmnHousehold
from services.contracts.topics import BMN_HOUSEHOLDS, INGEST_REJECTED, RAW_BMN
from tests.service.brokers import DisposableBroker
from tests.service.ingest.conftest import IngestServer, TopicTail, start_ingest, stop_ingest
from tests.synthetic import household

pytestmark = pytest.mark.stack


def test_raw_topic_records_are_validated_and_republished_or_rejected(
    ingest: IngestServer, kafka_bootstrap: str
) -> None:
    accepted_tail = TopicTail(kafka_bootstrap, BMN_HOUSEHOLDS.name)
    rejected_tail = TopicTail(kafka_bootstrap, INGEST_REJECTED.name)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    headers = [("agency", b"CDD")]
    good = household(household_id=f"raw-{uuid.uuid4().hex[:8]}")
    for value in (
        orjson.dumps(good),
        orjson.dumps(household(village_code="49990101")),
        b"not json",
    ):
        producer.send(RAW_BMN.name, value=value, key=b"k", headers=headers)
    producer.flush()
    producer.close()

    (accepted,) = accepted_tail.read(1, timeout=30)
    event = Envelope[BmnHousehold].model_validate_json(accepted.value)  # type: ignore[attr-defined]
    assert event.source == "/ingest/kafka/CDD"
    assert event.data.household_id == good["household_id"]
    rejected = [
        Envelope[RejectedRecord].model_validate_json(m.value).data  # type: ignore[attr-defined]
        for m in rejected_tail.read(2, timeout=30)
    ]
    assert {r.channel for r in rejected} == {"kafka"}
    assert all(r.request_id and r.request_id.startswith(f"{RAW_BMN.name}:") for r in rejected)
    reasons = sorted(e.field for r in rejected for e in r.errors)
    assert reasons == ["(record)", "village_code"]
    assert b"not json" in {r.payload.encode() for r in rejected}


def _events_by_id(bootstrap: str) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(BMN_HOUSEHOLDS.name, p) for p in range(BMN_HOUSEHOLDS.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    counts: dict[str, int] = {}
    deadline = time.monotonic() + 20
    while any(consumer.position(p) < ends[p] for p in partitions) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                event_id = orjson.loads(record.value)["id"]
                counts[event_id] = counts.get(event_id, 0) + 1
    consumer.close()
    return counts


def _wait_ready(server: IngestServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200:
            return
        time.sleep(0.5)
    pytest.fail("ingest did not become ready again")


def test_broker_outage_answers_503_and_a_resend_is_not_duplicated(
    broker: DisposableBroker, database_url: str, ingest_keys: dict[str, str], tmp_path: Path
) -> None:
    server = start_ingest(
        broker.bootstrap, database_url, tmp_path / "ingest.log", INGEST_KAFKA_TIMEOUT_SECONDS="3"
    )
    run = uuid.uuid4().hex[:8]
    headers = {
        "authorization": f"Bearer {ingest_keys['CDD']}",
        "content-type": "application/x-ndjson",
    }

    def send(ids: range) -> httpx.Response:
        body = b"".join(orjson.dumps(household(household_id=f"{run}-{i}")) + b"\n" for i in ids)
        return httpx.post(
            f"{server.url}/v1/bmn/households", content=body, headers=headers, timeout=60
        )

    try:
        before = send(range(3))
        assert before.status_code == 200
        assert before.json()["accepted"] == 3

        broker.stop()
        during = send(range(3, 8))
        assert during.status_code == 503, during.text
        assert "nothing of this request is accepted" in during.json()["detail"]
        assert "accepted" not in during.json()
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503

        broker.start()
        _wait_ready(server)
        after = send(range(3, 8))
        assert after.status_code == 200, after.text
        assert after.json()["accepted"] == 5
    finally:
        stop_ingest(server)

    counts = _events_by_id(broker.bootstrap)
    assert len(counts) == 8  # every household once: three before, five resent after the outage
    assert set(counts.values()) == {1}
