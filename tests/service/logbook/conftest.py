"""Fixtures for the logbook against the real broker and PostgreSQL: the service runs as its own
process (`python -m services.logbook`), as in production; the matcher's statuses are produced
to the real status topics."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from deploy.local.ports import any_free_port
from services.contracts.events import HouseholdStatus, PersonStatus, envelope
from services.contracts.indicators import Dimension
from services.contracts.topics import HOUSEHOLD_STATUS, PERSON_STATUS
from services.logbook.scope import Role
from services.logbook.store import Store, migrate
from services.logbook.tokens import new_token
from tests.service.brokers import DisposablePostgres
from tests.synthetic import citizen_id

REPO = Path(__file__).parents[3]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogbookServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_logbook(
    kafka_bootstrap: str, database_url: str, log: Path, **settings: str
) -> LogbookServer:
    port = any_free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "LOGBOOK_PORT": str(port),
        "LOGBOOK_KAFKA_TIMEOUT_SECONDS": "5",
        # A group of its own: each test's logbook has its own database, so it must see every
        # partition (replicas sharing one database share a group instead).
        "LOGBOOK_CONSUMER_GROUP": f"tpmap-logbook-test-{uuid.uuid4().hex[:8]}",
        **settings,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.logbook"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"logbook exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LogbookServer(url, process, log)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"logbook did not answer within 60 s:\n{log.read_text()}")


def stop_logbook(server: LogbookServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    # PDPA: whatever the tests sent, the service's log holds no citizen ID in full.
    assert not re.search(r"(?<![0-9])[0-9]{13}(?![0-9])", server.log.read_text())


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(database_url)
        try:
            return [dict(r) for r in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    return asyncio.run(run())


# --- the matcher's statuses ----------------------------------------------------------------


def household_status(
    household_id: str,
    village_code: str,
    version: int,
    *,
    target: bool = True,
    unregistered: int = 0,
    deprivation: tuple[Dimension, ...] = (Dimension.LIVING, Dimension.INCOME),
    crisis: bool = False,
    priority: int | None = None,
) -> HouseholdStatus:
    return HouseholdStatus(
        household_id=household_id,
        survey_year=2561,
        village_code=village_code,
        source="bmn",
        house_no="12 หมู่ 1",
        deprivation=list(deprivation),
        failed_indicators=[8, 22] if deprivation else [],
        member_count=2,
        target_members=1 if target else 0,
        registered_members=1 if target else 0,
        unregistered_members=unregistered,
        vulnerable_members=1,
        mpi_poor=bool(deprivation),
        target=target,
        nocard=not target and unregistered > 0,
        crisis=crisis,
        priority=priority if priority is not None else (1000 if crisis else 0) + len(deprivation),
        version=version,
    )


def person_status(
    n: int, household_id: str, village_code: str, version: int = 1, person_class: str = "target"
) -> PersonStatus:
    return PersonStatus.model_validate(
        {
            "citizen_id": citizen_id(n),
            "survey_year": 2561,
            "household_id": household_id,
            "village_code": village_code,
            "person_class": person_class,
            "deprivation": ["living", "income"],
            "failed_indicators": [8, 22],
            "applicable_indicators": [8, 22],
            "welfare_status": "verified" if person_class == "target" else None,
            "age_band": "60+",
            "disabled": True,
            "version": version,
        }
    )


def publish_statuses(bootstrap: str, statuses: list[HouseholdStatus | PersonStatus]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for status in statuses:
        if isinstance(status, HouseholdStatus):
            topic, key = HOUSEHOLD_STATUS, f"{status.household_id}:{status.survey_year}"
        else:
            topic, key = PERSON_STATUS, f"{status.citizen_id}:{status.survey_year}"
        event = envelope(topic.require_event_type(), "/matcher", status, subject=key)
        producer.send(topic.name, value=event.model_dump_json().encode(), key=key.encode())
    producer.flush()
    producer.close()


def household_version(database_url: str, household_id: str) -> int | None:
    rows = query(
        database_url,
        "SELECT version FROM logbook.households WHERE household_id = $1",
        household_id,
    )
    return rows[0]["version"] if rows else None


def wait_for_version(database_url: str, household_id: str, version: int) -> None:
    wait_for(
        f"{household_id} at version {version}",
        lambda: household_version(database_url, household_id) == version,
    )


def read_topic(bootstrap: str, topic: str, partitions: int = 6) -> list[Any]:
    """Every message of a topic, from the start."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(tps)
    found: list[Any] = []
    deadline = time.monotonic() + 30
    while any(consumer.position(p) < ends[p] for p in tps) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            found.extend(records)
    consumer.close()
    return found


# --- users ---------------------------------------------------------------------------------


def create_users(database_url: str, users: dict[str, tuple[Role, list[str]]]) -> dict[str, str]:
    """A user and a token for each name; returns name -> token."""
    migrate(database_url)

    async def create() -> dict[str, str]:
        store = await Store.connect(database_url, 1)
        try:
            tokens = {}
            for name, (role, areas) in users.items():
                user_id = f"{name}-{uuid.uuid4().hex[:6]}"
                await store.add_user(user_id, f"ผู้ใช้ทดสอบ {name}", role, areas, "test")
                token = new_token()
                await store.add_token(user_id, token, "test", "test")
                tokens[name] = token.token
            return tokens
        finally:
            await store.close()

    return asyncio.run(create())


# --- databases -----------------------------------------------------------------------------


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """A database of its own on the session's server, dropped after the test: its consumer
    offsets and outbox belong to this test alone."""
    name = f"logbook_test_{uuid.uuid4().hex[:10]}"
    base, _, _ = database_url.rpartition("/")

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    yield f"{base}/{name}"
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def disposable_postgres(tmp_path: Path) -> Iterator[DisposablePostgres]:
    server = DisposablePostgres(tmp_path)
    server.start()
    yield server
    server.remove()


# --- the session's logbook and its users -----------------------------------------------------

# Three places: one inside every test user's area, one inside the province but outside the
# district and team, one in another province.
INSIDE_VILLAGE = "49010101"
OTHER_DISTRICT_VILLAGE = "49020301"
OTHER_PROVINCE_VILLAGE = "30010101"

MATRIX_USERS: dict[str, tuple[Role, list[str]]] = {
    "national": ("national", ["TH"]),
    "province": ("province", ["49"]),
    "district": ("district", ["4901"]),
    "team": ("team", ["490101"]),
}
# Writers in the other areas, to make things there that the matrix users must not see.
HELPERS: dict[str, tuple[Role, list[str]]] = {
    "other_district": ("district", ["4902"]),
    "other_province": ("province", ["30"]),
}


@pytest.fixture(scope="session")
def logbook_tokens(database_url: str) -> dict[str, str]:
    return create_users(database_url, {**MATRIX_USERS, **HELPERS})


@pytest.fixture(scope="session")
def logbook(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LogbookServer]:
    migrate(database_url)
    server = start_logbook(
        kafka_bootstrap, database_url, tmp_path_factory.mktemp("logbook") / "logbook.log"
    )
    wait_for("logbook ready", lambda: _ready(server))
    yield server
    stop_logbook(server)


def _ready(server: LogbookServer) -> bool:
    try:
        return httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def run_id() -> str:
    return uuid.uuid4().hex[:8]
