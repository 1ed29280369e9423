"""Logbook progress with the real broker and PostgreSQL: logbook.events.v1 (in the envelopes the
logbook's outbox writes, events published again later, an unreadable message) and household
statuses end in the progress figures of a recount; a replay from offset 0 plus the events
published once more changes no row; the running service answers them over HTTP and on
reporting.area-aggregates.v1."""

from __future__ import annotations

import random
import time
from itertools import product
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from services.contracts.events import HouseholdStatus, LogbookEventData, envelope
from services.contracts.topics import LOGBOOK_EVENTS
from services.reporting.aggregates import counters_of_aggregate
from services.reporting.progress import progress_figures
from tests.service.brokers import DisposableBroker
from tests.service.reporting.conftest import (
    AREAS,
    YEARS,
    caught_up,
    dirty_areas,
    latest_aggregates,
    produce,
)
from tests.service.reporting.test_reporting_api import start_reporting, stop_reporting
from tests.service.reporting.test_reporting_consumer import catch_up, table
from tests.unit.reporting.casework import Item, casework, recount

pytestmark = pytest.mark.stack


def produce_casework(bootstrap: str, items: list[Item], garbage: int = 0) -> None:
    """Household statuses to their topic; logbook events as the logbook's relay sends them (key
    household_id, the envelope id derived from the content), in the order given."""
    produce(bootstrap, [item for item in items if isinstance(item, HouseholdStatus)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for item in items:
        if isinstance(item, HouseholdStatus):
            continue
        event_id, event = item
        wrapped = envelope(
            LOGBOOK_EVENTS.require_event_type(),
            "/logbook",
            LogbookEventData(event=event),
            subject=event.household_id,
            time=event.occurred_at,
        )
        assert wrapped.id == event_id
        producer.send(
            LOGBOOK_EVENTS.name,
            key=event.household_id.encode(),
            value=wrapped.model_dump_json().encode(),
        )
    for n in range(garbage):
        producer.send(LOGBOOK_EVENTS.name, key=f"garbage-{n}".encode(), value=b"{not json")
    producer.flush()
    producer.close()


def test_progress_equals_the_recount_and_a_replay_changes_nothing(
    broker: DisposableBroker, fresh_database: str
) -> None:
    items = casework(random.Random(21), households=12, events=10)
    produce_casework(broker.bootstrap, items, garbage=1)

    counted = catch_up(broker.bootstrap, fresh_database)
    for year, area in product(YEARS, AREAS):
        assert progress_figures(counted[(year, area)]) == recount(items, year, area), (year, area)
    assert progress_figures(counted[(2561, "TH")]).cases > 0
    letters = table(fresh_database, "SELECT topic FROM reporting.dead_letters")
    assert [r["topic"] for r in letters] == [LOGBOOK_EVENTS.name]

    # A replay from offset 0 and every event published once more: no row changes.
    rows = (
        "SELECT * FROM reporting.counters ORDER BY survey_year, area_code, counter",
        "SELECT household_id, survey_year, file, counters FROM reporting.cases ORDER BY 1, 2",
        "SELECT event_id FROM reporting.logbook_events ORDER BY 1",
    )
    before = [table(fresh_database, sql) for sql in rows]
    table(fresh_database, "UPDATE reporting.consumer_offsets SET next_offset = 0")
    events: list[Item] = [item for item in items if isinstance(item, tuple)]
    produce_casework(broker.bootstrap, events)
    assert catch_up(broker.bootstrap, fresh_database) == counted
    assert [table(fresh_database, sql) for sql in rows] == before


def test_the_service_serves_progress_over_http_and_on_the_aggregates_topic(
    broker: DisposableBroker, fresh_database: str, tmp_path: Path
) -> None:
    log = tmp_path / "reporting.log"
    process, url = start_reporting(broker.bootstrap, fresh_database, log, "tpmap-progress-test")
    try:
        items = casework(random.Random(22), households=8)
        produce_casework(broker.bootstrap, items)
        deadline = time.monotonic() + 60
        while not caught_up(broker.bootstrap, fresh_database) or dirty_areas(fresh_database):
            assert time.monotonic() < deadline, "not applied and published in time"
            time.sleep(0.3)
        published = latest_aggregates(broker.bootstrap)
        for year, area in product(YEARS, AREAS):
            expected = recount(items, year, area)
            response = httpx.get(f"{url}/v1/areas/{area}", params={"year": year}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["progress"] == expected.model_dump(mode="json")
            if f"{year}:{area}" in published:
                aggregate = published[f"{year}:{area}"].data
                assert progress_figures(counters_of_aggregate(aggregate)) == expected
            else:  # nothing was ever counted there
                assert expected == progress_figures({})
    finally:
        stop_reporting(process, log)
