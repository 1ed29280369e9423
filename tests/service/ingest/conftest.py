"""Fixtures for the ingest service against the real broker and PostgreSQL: the service runs as
its own process (`python -m services.ingest`), as in production."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from deploy.local.ports import any_free_port
from services.ingest.api_keys import new_key
from services.ingest.store import Store, migrate

REPO = Path(__file__).parents[3]
MAX_JSON_BODY = 1024 * 1024
MAX_BODY = 4 * 1024 * 1024
MAX_RECORD = 64 * 1024


@dataclass(frozen=True, slots=True)
class IngestServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_ingest(
    kafka_bootstrap: str, database_url: str, log: Path, **settings: str
) -> IngestServer:
    port = any_free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "INGEST_PORT": str(port),
        "INGEST_KAFKA_TIMEOUT_SECONDS": "4",
        **settings,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ingest exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return IngestServer(url, process, log)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"ingest did not answer within 60 s:\n{log.read_text()}")


def stop_ingest(server: IngestServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def ingest_keys(database_url: str) -> dict[str, str]:
    """A key per agency for its own source, and one for all sources ("ALL")."""
    migrate(database_url)

    async def create() -> dict[str, str]:
        store = await Store.connect(database_url)
        try:
            keys = {}
            for agency, sources in {
                "CDD": ["bmn"],
                "MOF": ["welfare"],
                "DOPA": ["civil"],
                "ALL": ["bmn", "welfare", "civil"],
            }.items():
                key = new_key()
                await store.add_key(key, agency, sources, "test key")
                keys[agency] = key.token
            return keys
        finally:
            await store.close()

    return asyncio.run(create())


@pytest.fixture(scope="session")
def ingest(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestServer]:
    server = start_ingest(
        kafka_bootstrap,
        database_url,
        tmp_path_factory.mktemp("ingest") / "ingest.log",
        # Small limits, so the tests can cross them quickly.
        INGEST_MAX_JSON_BODY_BYTES=str(MAX_JSON_BODY),
        INGEST_MAX_BODY_BYTES=str(MAX_BODY),
        INGEST_MAX_RECORD_BYTES=str(MAX_RECORD),
    )
    yield server
    stop_ingest(server)
    # PDPA: whatever the tests sent, the service's log holds no citizen ID in full.
    assert not re.search(r"(?<![0-9])[0-9]{13}(?![0-9])", server.log.read_text())


class TopicTail:
    """Messages appended to a topic after this object was made."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        partitions = [
            TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or ()
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end()
        for partition in partitions:
            self._consumer.position(partition)

    def read(self, count: int, timeout: float = 20) -> list[object]:
        """Exactly `count` new messages (fails on fewer within the timeout), then checks no more arrive."""
        found: list[object] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for records in self._consumer.poll(timeout_ms=200).values():
                found.extend(records)
        for records in self._consumer.poll(timeout_ms=500).values():
            found.extend(records)
        self._consumer.close()
        assert len(found) == count, f"expected {count} new messages, found {len(found)}"
        return found
