"""Reporting's consumer with the real broker and PostgreSQL: statuses with duplicates and stale
versions end in the figures of a recount; a replay from offset 0 changes nothing; an unreadable
message is kept as a dead letter and skipped."""

from __future__ import annotations

import asyncio
import random
import uuid
from contextlib import suppress
from itertools import product
from typing import Any

import asyncpg
import pytest

from services.contracts.topics import PERSON_STATUS
from services.reporting.consumer import StatusConsumer
from services.reporting.contributions import CARD_FILTERS, figures
from services.reporting.settings import ReportingSettings
from services.reporting.store import Store
from tests.service.brokers import DisposableBroker
from tests.service.reporting.conftest import AREAS, YEARS, end_offsets, produce, random_stream
from tests.unit.reporting.recount import Recount, final_states

pytestmark = pytest.mark.stack


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
    versions, stream = random_stream(7)
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
    produce(broker.bootstrap, random.Random(8).sample(versions, 40))
    assert catch_up(broker.bootstrap, fresh_database) == counted
    assert (table(fresh_database, everything), table(fresh_database, applied)) == before
    assert len(table(fresh_database, "SELECT * FROM reporting.dead_letters")) == 2
