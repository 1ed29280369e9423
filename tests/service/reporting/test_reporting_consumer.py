"""Reporting's consumer with the real broker and PostgreSQL: statuses with duplicates and stale
versions end in the figures of a recount; a replay from offset 0 changes nothing; an unreadable
message is kept as a dead letter and skipped."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from contextlib import suppress
from itertools import product
from typing import Any

import asyncpg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.contracts.areas import parent_chain
from services.contracts.events import HouseholdStatus, PersonStatus, envelope
from services.contracts.indicators import DIMENSIONS
from services.contracts.topics import HOUSEHOLD_STATUS, PERSON_STATUS
from services.reporting.consumer import TOPICS, StatusConsumer
from services.reporting.contributions import CARD_FILTERS, figures
from services.reporting.settings import ReportingSettings
from services.reporting.store import Store, migrate
from tests.service.brokers import DisposableBroker
from tests.synthetic import citizen_id
from tests.unit.reporting.recount import Recount, Status, final_states

pytestmark = pytest.mark.stack

VILLAGES = ("49010101", "49010102", "49020301", "30010101")
YEARS = (2561, 2562)
AREAS = sorted({code for village in VILLAGES for code in parent_chain(village)})
PARTITIONS = 6


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


def end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(t, p) for t in TOPICS for p in range(PARTITIONS)]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


async def _catch_up(
    bootstrap: str, database_url: str, ends: dict[tuple[str, int], int]
) -> dict[tuple[int, str], dict[str, int]]:
    """Runs a consumer until PostgreSQL's offsets reach `ends`; returns every area's counters."""
    settings = ReportingSettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DATABASE_URL=database_url,
        consumer_group=f"tpmap-reporting-test-{uuid.uuid4().hex[:8]}",
        consumer_batch=50,
    )
    store = await Store.connect(database_url, 2)
    task = asyncio.create_task(StatusConsumer(settings, store).run())
    try:
        async with asyncio.timeout(90):
            while True:
                stored = await store.stored_offsets(ends)
                if all(stored.get(tp, 0) >= end for tp, end in ends.items()):
                    break
                if task.done():
                    task.result()
                await asyncio.sleep(0.2)
        return {
            (year, area): (await store.area_counters(year, area)).counters
            for year, area in product(YEARS, AREAS)
        }
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await store.close()


def catch_up(bootstrap: str, database_url: str) -> dict[tuple[int, str], dict[str, int]]:
    return asyncio.run(_catch_up(bootstrap, database_url, end_offsets(bootstrap)))


def table(database_url: str, sql: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(database_url)
        try:
            return [dict(r) for r in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(run())


def test_figures_equal_the_recount_and_a_replay_changes_nothing(
    broker: DisposableBroker, fresh_database: str
) -> None:
    rng = random.Random(7)
    versions: list[Status] = []
    for n, year in product(range(40), YEARS):
        versions += [person(rng, n, year, v) for v in range(1, rng.randint(1, 3) + 1)]
    for n, year in product(range(7), YEARS):
        versions += [household(rng, n, year, v) for v in range(1, rng.randint(1, 2) + 1)]
    stream = versions[:]
    rng.shuffle(stream)  # stale versions arrive after newer ones
    stream += rng.sample(versions, 30)  # duplicates
    produce(broker.bootstrap, stream, garbage=2)

    counted = catch_up(broker.bootstrap, fresh_database)
    states = final_states(stream)
    for (year, area), mask, card in product(counted, ("11111", "10000", "00110"), CARD_FILTERS):
        expected = Recount(mask, card).figures(states, year, area)
        assert figures(counted[(year, area)], mask, card) == expected, (year, area, mask, card)
    assert figures(counted[(2561, "TH")]).persons_surveyed > 0
    letters = table(fresh_database, "SELECT topic FROM reporting.dead_letters")
    assert [r["topic"] for r in letters] == [PERSON_STATUS.name] * 2

    # A replay of every topic from offset 0, and the old versions sent again: nothing changes.
    everything = "SELECT * FROM reporting.counters ORDER BY survey_year, area_code, counter"
    applied = "SELECT kind, entity_key, version, counters FROM reporting.applied ORDER BY 1, 2"
    before = (table(fresh_database, everything), table(fresh_database, applied))
    table(fresh_database, "UPDATE reporting.consumer_offsets SET next_offset = 0")
    produce(broker.bootstrap, rng.sample(versions, 40))
    assert catch_up(broker.bootstrap, fresh_database) == counted
    assert (table(fresh_database, everything), table(fresh_database, applied)) == before
    assert len(table(fresh_database, "SELECT * FROM reporting.dead_letters")) == 2
