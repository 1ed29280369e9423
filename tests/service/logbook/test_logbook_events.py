"""The logbook with Kafka and PostgreSQL themselves: cases following the matcher's statuses,
replays that change nothing, a broker outage, a PostgreSQL restart."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from services.contracts.events import Envelope, LogbookEventData
from services.contracts.indicators import Dimension
from services.contracts.records import BmnHousehold
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    HOUSEHOLD_STATUS,
    LOGBOOK_EVENTS,
    PERSON_STATUS,
)
from services.logbook.cases import case_id
from tests.service.brokers import DisposableBroker, DisposablePostgres
from tests.service.logbook.conftest import (
    INSIDE_VILLAGE,
    LogbookServer,
    auth,
    create_users,
    household_status,
    person_status,
    publish_statuses,
    query,
    read_topic,
    run_id,
    start_logbook,
    stop_logbook,
    wait_for,
    wait_for_version,
)
from tests.synthetic import citizen_id

pytestmark = pytest.mark.stack


def _case(server: LogbookServer, token: str, household: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{server.url}/v1/cases/{case_id(household, 2561)}", headers=auth(token), timeout=10
    )
    return response.json() if response.status_code == 200 else None


def _events(bootstrap: str, households: set[str]) -> list[LogbookEventData]:
    found = []
    for message in read_topic(bootstrap, LOGBOOK_EVENTS.name):
        event = Envelope[LogbookEventData].model_validate_json(message.value)
        if event.data.event.household_id in households:
            assert message.key.decode() == event.data.event.household_id
            found.append(event.data)
    return found


def test_a_case_follows_its_households_status(
    logbook: LogbookServer,
    logbook_tokens: dict[str, str],
    kafka_bootstrap: str,
    database_url: str,
) -> None:
    run = run_id()
    token = logbook_tokens["national"]
    target, outreach, never = f"flow-{run}-t", f"flow-{run}-o", f"flow-{run}-n"
    publish_statuses(
        kafka_bootstrap,
        [
            household_status(target, INSIDE_VILLAGE, 1),
            household_status(outreach, INSIDE_VILLAGE, 1, target=False, unregistered=2),
            household_status(never, INSIDE_VILLAGE, 1, target=False, deprivation=()),
        ],
    )
    for household in (target, outreach, never):
        wait_for_version(database_url, household, 1)
    assert _case(logbook, token, never) is None
    first = _case(logbook, token, target)
    assert first is not None
    assert (first["reason"], first["status"]) == ("target", "open")
    assert first["reason_th"] == "คนจนเป้าหมาย"
    opened = _case(logbook, token, outreach)
    assert opened is not None
    assert (opened["reason"], opened["status"]) == ("outreach", "open")

    # No longer target (a verified member withdrew), then target again; outreach that worked.
    publish_statuses(
        kafka_bootstrap,
        [
            household_status(target, INSIDE_VILLAGE, 2, target=False),
            household_status(outreach, INSIDE_VILLAGE, 2),
        ],
    )
    wait_for_version(database_url, target, 2)
    wait_for_version(database_url, outreach, 2)
    dropped = _case(logbook, token, target)
    assert dropped is not None
    assert (dropped["reason"], dropped["status"]) == ("target", "no_longer_target")
    assert dropped["status_th"] == "ไม่เป็นคนจนเป้าหมายแล้ว"
    upgraded = _case(logbook, token, outreach)
    assert upgraded is not None
    assert (upgraded["reason"], upgraded["status"]) == ("target", "open")

    publish_statuses(
        kafka_bootstrap, [household_status(target, INSIDE_VILLAGE, 3, crisis=True, priority=1003)]
    )
    wait_for_version(database_url, target, 3)
    back = _case(logbook, token, target)
    assert back is not None
    assert (back["status"], back["crisis"], back["priority"]) == ("open", True, 1003)

    def all_events() -> list[LogbookEventData] | None:
        events = _events(kafka_bootstrap, {target, outreach})
        return events if len(events) == 5 else None

    events = [e.event for e in wait_for("the case events on Kafka", all_events)]
    of_target = [e for e in events if e.household_id == target]
    assert [
        (e.kind, getattr(e, "reason", None) or getattr(e, "status", None)) for e in of_target
    ] == [
        ("case_opened", "target"),
        ("case_status_changed", "no_longer_target"),
        ("case_status_changed", "open"),
    ]
    of_outreach = [e for e in events if e.household_id == outreach]
    assert [getattr(e, "reason", None) for e in of_outreach] == ["outreach", "target"]
    assert all(e.actor == "system" for e in events)

    audit = httpx.get(
        f"{logbook.url}/v1/audit",
        params={"case_id": case_id(target, 2561)},
        headers=auth(token),
        timeout=10,
    ).json()
    assert [(a["before"] or {}).get("status") for a in reversed(audit)] == [
        None,
        "open",
        "no_longer_target",
    ]


def _end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    partitions = [
        TopicPartition(topic.name, p)
        for topic in (HOUSEHOLD_STATUS, PERSON_STATUS)
        for p in range(topic.partitions)
    ]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


def _caught_up(bootstrap: str, database: str) -> bool:
    stored = {
        (r["topic"], r["partition"]): r["next_offset"]
        for r in query(
            database, "SELECT topic, partition, next_offset FROM logbook.consumer_offsets"
        )
    }
    return all(stored.get(tp, 0) >= end for tp, end in _end_offsets(bootstrap).items())


def _snapshot(database: str) -> dict[str, Any]:
    """Everything the consumer writes, as text."""
    tables = {
        "households": "household_id, survey_year",
        "persons": "citizen_id, survey_year",
        "cases": "case_id",
        "audit": "audit_id",
        "outbox": "outbox_id",
    }
    return {
        table: query(
            database,
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) AS digest, "  # noqa: S608
            f"count(*) AS rows FROM logbook.{table} t",
        )[0]
        for table, order in tables.items()
    }


def test_replaying_the_matchers_events_changes_nothing(
    kafka_bootstrap: str, fresh_database: str, tmp_path: Path
) -> None:
    run = run_id()
    first = 800_000_000 + int(run, 16) % 1_000_000 * 100
    households = [f"replay-{run}-{n}" for n in range(6)]
    history: list[Any] = []
    for n, household in enumerate(households):
        history += [
            household_status(household, INSIDE_VILLAGE, 1, target=n % 2 == 0, unregistered=n % 3),
            household_status(household, INSIDE_VILLAGE, 2, target=n % 3 == 0, crisis=n == 0),
            person_status(first + n, household, INSIDE_VILLAGE, 1, "unregistered_poor"),
            person_status(first + n, household, INSIDE_VILLAGE, 2),
        ]
    publish_statuses(kafka_bootstrap, history)
    log = tmp_path / "logbook.log"
    server = start_logbook(kafka_bootstrap, fresh_database, log, LOGBOOK_RELAY="false")
    try:
        wait_for("the consumer to catch up", lambda: _caught_up(kafka_bootstrap, fresh_database))
        before = _snapshot(fresh_database)
        assert before["cases"]["rows"] >= 2

        # The same events again, and older versions after newer ones, in a shuffled order.
        again = list(history)
        random.Random(run).shuffle(again)
        publish_statuses(kafka_bootstrap, again)
        wait_for("the consumer to catch up", lambda: _caught_up(kafka_bootstrap, fresh_database))
        after = _snapshot(fresh_database)
        assert {t: v["rows"] for t, v in after.items()} == {t: v["rows"] for t, v in before.items()}
        assert after == before
    finally:
        stop_logbook(server)

    # Everything from the start of the topics, as after a reset of the consumer.
    query(fresh_database, "DELETE FROM logbook.consumer_offsets")
    server = start_logbook(kafka_bootstrap, fresh_database, log, LOGBOOK_RELAY="false")
    try:
        wait_for("the replay", lambda: _caught_up(kafka_bootstrap, fresh_database))
        assert _snapshot(fresh_database) == before
    finally:
        stop_logbook(server)


def _ready(server: LogbookServer) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{server.url}/readyz", timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def _field_household(village: str, n: int) -> dict[str, Any]:
    return {
        "survey_year": 2561,
        "village_code": village,
        "members": [{"citizen_id": citizen_id(n), "age": 45, "sex": "M"}],
        "indicators": {"8": "fail"},
    }


def test_writes_succeed_while_the_broker_is_down_and_are_published_once_after(
    broker: DisposableBroker, fresh_database: str, tmp_path: Path
) -> None:
    run = run_id()
    first = 600_000_000 + int(run, 16) % 1_000_000 * 100
    tokens = create_users(fresh_database, {"team": ("team", ["490101"])})
    households = [f"outage-{run}-{n}" for n in range(3)]
    publish_statuses(broker.bootstrap, [household_status(h, INSIDE_VILLAGE, 1) for h in households])
    server = start_logbook(broker.bootstrap, fresh_database, tmp_path / "logbook.log")
    headers = auth(tokens["team"])
    try:
        for household in households:
            wait_for_version(fresh_database, household, 1)
        wait_for("the outbox to drain", lambda: (_ready(server) or {}).get("outbox_backlog") == 0)

        broker.stop()
        written = 0
        for round_ in range(3):
            for household in households:
                base = f"{server.url}/v1/cases/{case_id(household, 2561)}"
                visit = httpx.post(
                    f"{base}/visits",
                    json={"visited_on": "2018-07-0" + str(round_ + 1), "team_member": "สมชาย"},
                    headers=headers,
                    timeout=10,
                )
                assert visit.status_code == 201, visit.text
                resolution = httpx.put(
                    f"{base}/resolutions/living",
                    json={"resolution": ["in_progress", "helped", "self_resolved"][round_]},
                    headers=headers,
                    timeout=10,
                )
                assert resolution.status_code == 200, resolution.text
                written += 2
        field = httpx.post(
            f"{server.url}/v1/field-households",
            json=_field_household(INSIDE_VILLAGE, first),
            headers=headers,
            timeout=10,
        )
        assert field.status_code == 201, field.text
        ready = _ready(server)
        assert ready is not None
        assert ready["outbox_backlog"] == written + 1

        broker.start()
        wait_for(
            "the outbox to drain after the broker is back",
            lambda: (_ready(server) or {}).get("outbox_backlog") == 0,
            timeout=120,
        )
    finally:
        stop_logbook(server)

    messages = read_topic(broker.bootstrap, LOGBOOK_EVENTS.name)
    ids = [orjson.loads(m.value)["id"] for m in messages]
    assert len(ids) == len(set(ids)), "an event was published twice"
    events = [Envelope[LogbookEventData].model_validate_json(m.value).data.event for m in messages]
    assert sum(e.kind == "case_opened" for e in events) == 3
    assert sum(e.kind == "visit_recorded" for e in events) == 9
    assert sum(e.kind == "resolution_recorded" for e in events) == 9
    # In order per household: each one's resolutions in the order they were written.
    for household in households:
        mine = [e for e in events if e.household_id == household]
        assert mine[0].kind == "case_opened"
        assert [
            getattr(e, "resolution", None) for e in mine if e.kind == "resolution_recorded"
        ] == [
            "in_progress",
            "helped",
            "self_resolved",
        ]
    (added,) = read_topic(broker.bootstrap, BMN_HOUSEHOLDS.name)
    envelope = Envelope[BmnHousehold].model_validate_json(added.value)
    assert envelope.type == BMN_HOUSEHOLDS.event_type
    assert envelope.source == "/logbook/field"
    assert envelope.data.source == "field"
    assert added.key.decode() == envelope.data.household_id == field.json()["household_id"]


def test_the_service_recovers_from_a_postgresql_restart(
    broker: DisposableBroker, disposable_postgres: DisposablePostgres, tmp_path: Path
) -> None:
    run = run_id()
    database = disposable_postgres.url
    tokens = create_users(database, {"team": ("team", ["490101"])})
    household = f"pgrestart-{run}"
    publish_statuses(broker.bootstrap, [household_status(household, INSIDE_VILLAGE, 1)])
    server = start_logbook(broker.bootstrap, database, tmp_path / "logbook.log")
    headers = auth(tokens["team"])
    visits = f"{server.url}/v1/cases/{case_id(household, 2561)}/visits"
    visit = {"visited_on": "2018-07-02", "team_member": "สมหญิง"}
    try:
        wait_for_version(database, household, 1)
        assert httpx.post(visits, json=visit, headers=headers, timeout=10).status_code == 201

        disposable_postgres.stop()
        during = httpx.post(visits, json=visit, headers=headers, timeout=30)
        assert during.status_code == 503
        assert during.headers["retry-after"]
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 503

        disposable_postgres.start()
        wait_for("readiness after the restart", lambda: _ready(server))
        after = wait_for(
            "a write after the restart",
            lambda: httpx.post(visits, json=visit, headers=headers, timeout=10).status_code == 201,
        )
        assert after
        # The consumer and the relay came back too: a new status is applied, events published.
        publish_statuses(
            broker.bootstrap, [household_status(household, INSIDE_VILLAGE, 2, target=False)]
        )
        wait_for_version(database, household, 2)
        wait_for("the outbox to drain", lambda: (_ready(server) or {}).get("outbox_backlog") == 0)
    finally:
        stop_logbook(server)
    kinds = [e.event.kind for e in _events(broker.bootstrap, {household})]
    assert kinds.count("visit_recorded") == 2
    assert kinds[-1] == "case_status_changed"


def test_the_consumer_dead_letters_what_it_cannot_read(
    logbook: LogbookServer, kafka_bootstrap: str, database_url: str
) -> None:
    from kafka import KafkaProducer  # noqa: PLC0415

    key = f"broken-{run_id()}:2561"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(HOUSEHOLD_STATUS.name, value=b"not an envelope", key=key.encode())
    producer.flush()
    producer.close()

    def letter() -> list[dict[str, Any]] | None:
        rows = query(
            database_url,
            "SELECT value FROM logbook.outbox WHERE topic = 'logbook.dead-letter.v1' AND key = $1",
            key,
        )
        return rows or None

    (row,) = wait_for("the dead letter", letter)
    data = orjson.loads(row["value"])["data"]
    assert data["consumer"] == "logbook"
    assert data["value"] == "not an envelope"


def test_dimension_and_crisis_filters_and_priority_order(
    logbook: LogbookServer,
    logbook_tokens: dict[str, str],
    kafka_bootstrap: str,
    database_url: str,
) -> None:
    run = run_id()
    village = "49010102"
    statuses = [
        household_status(f"order-{run}-a", village, 1, priority=3),
        household_status(f"order-{run}-b", village, 1, crisis=True, priority=1002),
        household_status(f"order-{run}-c", village, 1, deprivation=(Dimension.HEALTH,), priority=1),
    ]
    publish_statuses(kafka_bootstrap, statuses)
    for status in statuses:
        wait_for_version(database_url, status.household_id, 1)
    headers = auth(logbook_tokens["team"])

    def listed(**params: Any) -> list[str]:
        cases: list[str] = []
        cursor = None
        while True:
            page = httpx.get(
                f"{logbook.url}/v1/cases",
                params={
                    "village": village,
                    "limit": 1,
                    **params,
                    **({"cursor": cursor} if cursor else {}),
                },
                headers=headers,
                timeout=10,
            ).json()
            cases += [
                c["household_id"]
                for c in page["cases"]
                if c["household_id"].startswith(f"order-{run}")
            ]
            cursor = page["next_cursor"]
            if cursor is None:
                return cases

    assert listed() == [f"order-{run}-b", f"order-{run}-a", f"order-{run}-c"]
    assert listed(crisis="true") == [f"order-{run}-b"]
    assert listed(dimension="health") == [f"order-{run}-c"]
    assert listed(status="no_longer_target") == []


def test_progress_report_counts_field_work(
    logbook: LogbookServer,
    logbook_tokens: dict[str, str],
    kafka_bootstrap: str,
    database_url: str,
) -> None:
    run = run_id()
    household = f"report-{run}"
    publish_statuses(kafka_bootstrap, [household_status(household, INSIDE_VILLAGE, 1)])
    wait_for_version(database_url, household, 1)
    token = logbook_tokens["district"]
    base = f"{logbook.url}/v1/cases/{case_id(household, 2561)}"
    for dimension in ("living", "income"):
        response = httpx.put(
            f"{base}/resolutions/{dimension}", json={"resolution": "helped"}, headers=auth(token)
        )
        assert response.status_code == 200
    assert (
        httpx.put(
            f"{base}/resolutions/health", json={"resolution": "helped"}, headers=auth(token)
        ).status_code
        == 422
    )

    def report(area: str) -> list[dict[str, str]]:
        import csv  # noqa: PLC0415

        response = httpx.get(
            f"{logbook.url}/v1/reports/progress.csv",
            params={"area": area, "survey_year": 2561},
            headers=auth(token),
            timeout=30,
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(response.content.decode("utf-8-sig").splitlines()))

    before = {r["area_code"]: r for r in report("490101")}
    assert before["490101"]["name_th"] == "มุกดาหาร"
    assert int(before["490101"]["helped"]) >= 1
    assert int(before[INSIDE_VILLAGE]["cases"]) >= 1
    assert set(before) >= {"490101", INSIDE_VILLAGE}
