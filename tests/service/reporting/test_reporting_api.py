"""`python -m services.reporting` as its own process, as deploy/local starts it: statuses produced
to the broker reach the read API's figures; setup-local migrates and keeps other sections."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from deploy.local.ports import any_free_port
from services.contracts.areas import parent_chain
from services.contracts.indicators import DIMENSIONS
from services.reporting.aggregates import counters_of_aggregate
from services.reporting.contributions import CARD_FILTERS, figures
from tests.service.brokers import DisposableBroker
from tests.service.reporting.conftest import (
    AREAS,
    YEARS,
    caught_up,
    caught_up_rows,
    dirty_areas,
    latest_aggregates,
    produce,
    random_stream,
)
from tests.unit.reporting.recount import Recount, Status, final_states

pytestmark = pytest.mark.stack

REPO = Path(__file__).parents[3]
_META = ("survey_year", "area_code", "level", "name_th", "name_en", "as_of")


def _env(bootstrap: str, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "REPORTING_CONSUMER_GROUP": _group(),
        **extra,
    }


def start_reporting(
    bootstrap: str, database_url: str, log: Path, group: str, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m services.reporting` on a free port, once /readyz answers 200."""
    port = any_free_port()
    env = _env(
        bootstrap,
        database_url,
        REPORTING_PORT=str(port),
        REPORTING_CONSUMER_GROUP=group,
        **settings,
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.reporting"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    _wait(f"{url}/readyz answers 200", lambda: _status(f"{url}/readyz") == 200, process, log)
    return process, url


def stop_reporting(process: subprocess.Popen[bytes], log: Path) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # PDPA: whatever the test sent, the log holds no citizen ID in full.
    assert not re.search(r"(?<![0-9])[0-9]{13}(?![0-9])", log.read_text())


@pytest.fixture
def reporting(
    broker: DisposableBroker, fresh_database: str, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "reporting.log"
    process, url = start_reporting(broker.bootstrap, fresh_database, log, _group())
    try:
        yield url, log
    finally:
        stop_reporting(process, log)


def _group() -> str:
    return f"tpmap-reporting-test-{uuid.uuid4().hex[:8]}"


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def _wait(what: str, probe: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"reporting exited with {process.returncode}:\n{log.read_text()}")
        if probe():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")


def _get(url: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(url, params=params, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _check_published(bootstrap: str, states: list[Status]) -> None:
    """The newest message of each area on reporting.area-aggregates.v1 answers the recount."""
    published = latest_aggregates(bootstrap)
    empty = figures({})
    for year, area in product(YEARS, AREAS):
        key = f"{year}:{area}"
        if key not in published:  # never counted (an area emptied later is sent, with zeros)
            assert Recount("11111", "all").figures(states, year, area) == empty
            continue
        event = published[key]
        assert (event.subject, event.data.survey_year, event.data.area_code) == (key, year, area)
        for card in CARD_FILTERS:
            expected = Recount("01100", card).figures(states, year, area)
            assert figures(counters_of_aggregate(event.data), "01100", card) == expected.model_copy(
                update={"deceased": 0, "unplaced": 0}
            )


def _check_children(url: str, states: list[Status]) -> None:
    """Every parent's children with anything counted, each answering the recount."""
    empty = figures({})
    for year, parent in product(YEARS, [a for a in AREAS if len(a) < 8]):
        expected_children = [
            a
            for a in AREAS
            if len(parent_chain(a)) > 1
            and parent_chain(a)[-2] == parent
            and Recount("11111", "all").figures(states, year, a) != empty
        ]
        listed = _get(f"{url}/v1/areas/{parent}/children", year=year, mask="10100", card="card")
        assert [c["area_code"] for c in listed["children"]] == expected_children
        for child in listed["children"]:
            expected = Recount("10100", "card").figures(states, year, child["area_code"])
            assert {k: v for k, v in child.items() if k not in _META} == orjson.loads(
                expected.model_dump_json()
            )


def test_the_read_api_answers_the_recount(
    reporting: tuple[str, Path], broker: DisposableBroker, fresh_database: str
) -> None:
    url, _ = reporting
    database = fresh_database
    assert _get(f"{url}/healthz") == {"status": "ok"}
    assert _get(f"{url}/v1/years") == {"years": []}
    assert httpx.get(f"{url}/v1/areas/TH", timeout=10).status_code == 404
    assert _get(f"{url}/v1/freshness")["consumer_lag"] == 0

    _, stream = random_stream(11)
    produce(broker.bootstrap, stream)
    states = final_states(stream)
    deadline = time.monotonic() + 60
    while not caught_up(broker.bootstrap, database):
        assert time.monotonic() < deadline, "the consumer did not reach the end of the topics"
        time.sleep(0.3)

    # Every changed area reaches reporting.area-aggregates.v1, coalesced, keyed year:area.
    while dirty_areas(database):
        assert time.monotonic() < deadline, "changed areas were not published"
        time.sleep(0.3)
    _check_published(broker.bootstrap, states)
    fresh = _get(f"{url}/v1/freshness")
    assert fresh["consumer_lag"] == 0
    assert fresh["newest_event_at"] is not None
    assert fresh["newest_event_age_seconds"] >= 0

    assert _get(f"{url}/v1/years") == {"years": list(YEARS)}
    for year, area, mask, card in product(YEARS, AREAS, ("11111", "01000"), CARD_FILTERS):
        body = _get(f"{url}/v1/areas/{area}", year=year, mask=mask, card=card)
        assert (body["survey_year"], body["area_code"], body["mask"], body["card"]) == (
            year,
            area,
            mask,
            card,
        )
        expected = orjson.loads(Recount(mask, card).figures(states, year, area).model_dump_json())
        assert {k: v for k, v in body.items() if k not in _META} == expected
        assert set(body["target_by_dimension"]) == {d.value for d in DIMENSIONS}
    _check_children(url, states)
    ranked = _get(f"{url}/v1/areas/490101/children", year=2561, sort="target_persons", order="desc")
    keys = [(-c["target_persons"], c["area_code"]) for c in ranked["children"]]
    assert len(keys) == 2
    assert keys == sorted(keys)
    assert httpx.get(f"{url}/v1/areas/TH/children", params={"sort": "x"}).status_code == 422
    assert httpx.get(f"{url}/v1/areas/49010101/children").status_code == 404
    latest = _get(f"{url}/v1/areas/49")
    assert (latest["survey_year"], latest["level"], latest["name_en"]) == (
        2562,
        "province",
        "Mukdahan",
    )
    assert latest["as_of"] is not None

    over_years = _get(f"{url}/v1/areas/4901/years", mask="00010", card="nocard")
    assert [y["survey_year"] for y in over_years["years"]] == list(YEARS)
    for each in over_years["years"]:
        single = _get(f"{url}/v1/areas/4901", year=each["survey_year"], mask="00010", card="nocard")
        assert each == single
    assert httpx.get(f"{url}/v1/areas/4", timeout=10).status_code == 404
    assert httpx.get(f"{url}/v1/areas/TH", params={"mask": "1111"}, timeout=10).status_code == 422
    assert httpx.get(f"{url}/v1/areas/TH", params={"card": "x"}, timeout=10).status_code == 422


def test_setup_local_migrates_and_keeps_other_sections(
    fresh_database: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_bytes(orjson.dumps({"logbook": {"url": "http://127.0.0.1:8002"}}))
    for _ in range(2):  # idempotent
        result = subprocess.run(
            [sys.executable, "-m", "services.reporting", "setup-local", str(credentials)],
            cwd=REPO,
            env=_env(kafka_bootstrap, fresh_database),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    document = orjson.loads(credentials.read_bytes())
    assert document["logbook"] == {"url": "http://127.0.0.1:8002"}
    assert document["reporting"] == {"url": "http://127.0.0.1:8003"}
    assert credentials.stat().st_mode & 0o777 == 0o600


def test_a_worker_killed_mid_stream_ends_with_the_same_figures(
    broker: DisposableBroker, fresh_database: str, tmp_path: Path
) -> None:
    """SIGKILL while batches are being applied, then a restart in the same group: every figure
    equals the recount (nothing lost, nothing counted twice)."""
    _, stream = random_stream(13, persons=600, households=60)
    first, rest = stream[:200], stream[200:]
    produce(broker.bootstrap, first)
    log, group = tmp_path / "reporting.log", _group()
    batch = {"REPORTING_CONSUMER_BATCH": "1"}  # one transaction per message: a long stream
    process, _ = start_reporting(broker.bootstrap, fresh_database, log, group, **batch)
    _wait("a first message applied", lambda: bool(caught_up_rows(fresh_database)), process, log)
    produce(broker.bootstrap, rest)
    process.kill()
    process.wait()
    partial = sum(caught_up_rows(fresh_database).values())
    # The API alone (no consumer) tells how far behind the figures are.
    api_only = {"REPORTING_CONSUMER": "false", "REPORTING_PUBLISHER": "false"}
    process, url = start_reporting(broker.bootstrap, fresh_database, log, _group(), **api_only)
    try:
        assert _get(f"{url}/v1/freshness")["consumer_lag"] == len(stream) - partial
    finally:
        stop_reporting(process, log)
    process, url = start_reporting(broker.bootstrap, fresh_database, log, group, **batch)
    try:
        _wait(
            "the restarted worker at the end of the topics",
            lambda: caught_up(broker.bootstrap, fresh_database),
            process,
            log,
        )
        states = final_states(stream)
        for year, area, card in product(YEARS, AREAS, CARD_FILTERS):
            body = _get(f"{url}/v1/areas/{area}", year=year, card=card)
            expected = orjson.loads(
                Recount("11111", card).figures(states, year, area).model_dump_json()
            )
            assert {k: v for k, v in body.items() if k not in _META} == expected
    finally:
        stop_reporting(process, log)
    assert partial < len(stream), "the worker finished before it was killed: not mid-stream"
