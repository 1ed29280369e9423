"""Fixtures and helpers of reporting's service tests: a fresh database per test, synthetic
matcher statuses, producing them to a broker."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from itertools import product

import asyncpg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.contracts.areas import parent_chain
from services.contracts.events import (
    AreaAggregate,
    Envelope,
    HouseholdStatus,
    PersonStatus,
    envelope,
)
from services.contracts.indicators import DIMENSIONS
from services.contracts.topics import (
    AREA_AGGREGATES,
    HOUSEHOLD_STATUS,
    PERSON_STATUS,
    TOPICS_BY_NAME,
)
from services.reporting.consumer import TOPICS
from services.reporting.store import migrate
from tests.synthetic import citizen_id
from tests.unit.reporting.recount import Status

VILLAGES = ("49010101", "49010102", "49020301", "30010101")
YEARS = (2561, 2562)
AREAS = sorted({code for village in VILLAGES for code in parent_chain(village)})


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server (its offsets are the test's alone),
    migrated, dropped afterwards."""
    name = f"reporting_test_{uuid.uuid4().hex[:10]}"
    base, _, _ = database_url.rpartition("/")

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    url = f"{base}/{name}"
    migrate(url)
    yield url
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def person(rng: random.Random, n: int, year: int, version: int) -> PersonStatus:
    person_class = rng.choice(
        ["not_poor", "target", "registered_poor", "unregistered_poor", "deceased", "removed"]
    )
    poor = person_class in ("target", "registered_poor", "unregistered_poor")
    deprivation = [d for d in DIMENSIONS if rng.random() < 0.4] if poor else []
    if poor and not deprivation:
        deprivation = [rng.choice(DIMENSIONS)]
    welfare = {
        "target": "verified",
        "registered_poor": "registered",
        "unregistered_poor": rng.choice([None, "rejected"]),
    }.get(person_class, rng.choice([None, "registered", "verified"]))
    applicable = sorted(rng.sample(range(1, 32), 5))
    return PersonStatus.model_validate(
        {
            "citizen_id": citizen_id(n),
            "survey_year": year,
            "household_id": f"hh-{n % 7}",
            "village_code": rng.choice(VILLAGES),
            "person_class": person_class,
            "deprivation": deprivation,
            "failed_indicators": applicable[: rng.randint(0, 5)],
            "applicable_indicators": applicable,
            "welfare_status": welfare,
            "age_band": rng.choice(["0-5", "15-59", "60+"]),
            "disabled": rng.random() < 0.2,
            "chronic_patient": rng.random() < 0.2,
            "version": version,
        }
    )


def household(rng: random.Random, n: int, year: int, version: int) -> HouseholdStatus:
    deprivation = [d for d in DIMENSIONS if rng.random() < 0.3]
    registered = rng.randint(0, 2)
    target = bool(deprivation) and registered > 0 and rng.random() < 0.6
    return HouseholdStatus(
        household_id=f"hh-{n}",
        survey_year=year,
        village_code=rng.choice(VILLAGES),
        source="bmn",
        deprivation=deprivation,
        failed_indicators=[],
        member_count=3,
        target_members=int(target),
        registered_members=registered,
        unregistered_members=3 - registered,
        vulnerable_members=0,
        mpi_poor=bool(deprivation),
        target=target,
        nocard=bool(deprivation) and registered == 0,
        crisis=target and rng.random() < 0.5,
        priority=0,
        version=version,
    )


def produce(bootstrap: str, statuses: list[Status], garbage: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for status in statuses:
        if isinstance(status, PersonStatus):
            topic, key = PERSON_STATUS, f"{status.citizen_id}:{status.survey_year}"
        else:
            topic, key = HOUSEHOLD_STATUS, f"{status.household_id}:{status.survey_year}"
        event = envelope(topic.require_event_type(), "/matcher", status, subject=key)
        producer.send(topic.name, value=event.model_dump_json().encode(), key=key.encode())
    for n in range(garbage):
        producer.send(PERSON_STATUS.name, value=b"{not json", key=f"garbage-{n}".encode())
    producer.flush()
    producer.close()


def random_stream(
    seed: int, persons: int = 40, households: int = 7
) -> tuple[list[Status], list[Status]]:
    """Every version of some persons and households in two years, and a stream of them with
    stale versions after newer ones and duplicates."""
    rng = random.Random(seed)
    versions: list[Status] = []
    for n, year in product(range(persons), YEARS):
        versions += [person(rng, n, year, v) for v in range(1, rng.randint(1, 3) + 1)]
    for n, year in product(range(households), YEARS):
        versions += [household(rng, n, year, v) for v in range(1, rng.randint(1, 2) + 1)]
    stream = versions[:]
    rng.shuffle(stream)
    return versions, stream + rng.sample(versions, 30)


def end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(t, p) for t in TOPICS for p in range(TOPICS_BY_NAME[t].partitions)]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def caught_up_rows(database_url: str) -> dict[tuple[str, int], int]:
    """PostgreSQL's next offset per status partition (absent: none applied yet)."""

    async def stored() -> dict[tuple[str, int], int]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT topic, partition, next_offset FROM reporting.consumer_offsets"
            )
            return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        finally:
            await connection.close()

    return asyncio.run(stored())


def caught_up(bootstrap: str, database_url: str) -> bool:
    """PostgreSQL's offsets have reached the ends of the status topics."""
    ends = end_offsets(bootstrap)
    offsets = caught_up_rows(database_url)
    return all(offsets.get(tp, 0) >= end for tp, end in ends.items())


def latest_aggregates(bootstrap: str) -> dict[str, Envelope[AreaAggregate]]:
    """The newest message of each key of reporting.area-aggregates.v1."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    tps = [TopicPartition(AREA_AGGREGATES.name, p) for p in range(AREA_AGGREGATES.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(tps)
    latest: dict[str, Envelope[AreaAggregate]] = {}
    deadline = time.monotonic() + 30
    try:
        while any(consumer.position(p) < ends[p] for p in tps):
            assert time.monotonic() < deadline, "could not read the aggregates topic"
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    latest[record.key.decode()] = Envelope[AreaAggregate].model_validate_json(
                        record.value
                    )
    finally:
        consumer.close()
    return latest


def dirty_areas(database_url: str) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(database_url)
        try:
            found: int = await connection.fetchval("SELECT count(*) FROM reporting.dirty_areas")
            return found
        finally:
            await connection.close()

    return asyncio.run(count())
