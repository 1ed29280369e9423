"""`GET /v1/stream` of `python -m services.reporting` with a broker of the test's own: a snapshot
on connect that answers the recount, a status produced to the broker arriving as events within a
second, and a client resuming with Last-Event-ID getting what it missed, each area once."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.contracts.events import PersonStatus
from services.contracts.indicators import Dimension
from tests.service.brokers import DisposableBroker
from tests.service.reporting.conftest import caught_up, dirty_areas, produce, random_stream
from tests.service.reporting.test_reporting_api import start_reporting, stop_reporting
from tests.unit.reporting.recount import Recount, Status, final_states

pytestmark = pytest.mark.stack

YEAR = 2561
FOLLOWED = "TH,TH*,49,49*"  # the country, every province, Mukdahan and its districts
MASK, CARD = "01100", "all"
_META = ("survey_year", "area_code", "level", "name_th", "name_en", "as_of")


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    id: str | None
    data: dict[str, Any]


class SseClient:
    """Reads a Server-Sent Events response on a thread of its own into a queue."""

    def __init__(self, url: str, params: dict[str, str], last_event_id: str | None = None) -> None:
        self.status: int | None = None
        self._events: queue.Queue[Event] = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._thread = threading.Thread(target=self._read, args=(url, params, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, params: dict[str, str], headers: dict[str, str]) -> None:
        fields: dict[str, str] = {}
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if not line:
                        if "event" in fields:
                            data = orjson.loads(fields.get("data", "null"))
                            self._events.put(Event(fields["event"], fields.get("id"), data))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        fields[name] = value
        except (httpx.TransportError, RuntimeError):
            return  # closed by the test

    def next(self, timeout: float) -> Event | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def until_ready(self, timeout: float = 30) -> tuple[list[Event], Event]:
        areas = []
        deadline = time.monotonic() + timeout
        while (event := self.next(max(deadline - time.monotonic(), 0.01))) is not None:
            if event.event == "ready":
                return areas, event
            areas.append(event)
        pytest.fail(f"no ready event (status {self.status}); got {areas}")

    def close(self) -> None:
        self._client.close()
        self._thread.join(10)


@pytest.fixture
def reporting_url(broker: DisposableBroker, fresh_database: str, tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "reporting.log"
    process, url = start_reporting(broker.bootstrap, fresh_database, log, "tpmap-stream-test")
    try:
        yield url
    finally:
        stop_reporting(process, log)


def _settle(bootstrap: str, database: str) -> None:
    """Waits until every status is applied and every changed area published."""
    deadline = time.monotonic() + 60
    while not caught_up(bootstrap, database) or dirty_areas(database):
        assert time.monotonic() < deadline, "statuses not applied and published in time"
        time.sleep(0.2)


def _expected(states: list[Status], area: str) -> dict[str, Any]:
    figures = orjson.loads(Recount(MASK, CARD).figures(states, YEAR, area).model_dump_json())
    return {k: v for k, v in figures.items() if k not in ("deceased", "unplaced")}


def _figures(event: Event) -> dict[str, Any]:
    return {k: v for k, v in event.data.items() if k not in _META}


def _followed_with_anything(states: list[Status]) -> set[str]:
    empty = _expected([], "TH")
    candidates = {"TH", "49", "30", "4901", "4902"}
    return {a for a in candidates if _expected(states, a) != empty}


def _moved_to_mukdahan(states: list[Status], n: int) -> list[Status]:
    """New versions of `n` persons of the stream: target, deprived in living and education, in
    village 49010101 (so TH, 49 and 4901 change, 30 and 4902 may too)."""
    persons = [s for s in states if isinstance(s, PersonStatus) and s.survey_year == YEAR][:n]
    return [
        p.model_copy(
            update={
                "version": p.version + 1,
                "person_class": "target",
                "welfare_status": "verified",
                "deprivation": [Dimension.LIVING, Dimension.EDUCATION],
                "village_code": "49010101",
            }
        )
        for p in persons
    ]


def _check_snapshot(client: SseClient, states: list[Status]) -> None:
    """Every followed area with anything counted, answering the recount, then `ready`."""
    snapshot, ready = client.until_ready()
    assert client.status == 200
    assert ready.data["resumed"] is False
    assert ready.id is not None
    assert all(e.event == "area" and e.id is None for e in snapshot)
    assert {e.data["area_code"] for e in snapshot} == _followed_with_anything(states)
    for event in snapshot:
        assert _figures(event) == _expected(states, event.data["area_code"])


def _receive_change(client: SseClient, states: list[Status], started: float) -> str:
    """Reads events until TH, 49 and 4901 answer the recount of `states`; the last event's ID."""
    arrived: dict[str, Event] = {}
    while not {"TH", "49", "4901"} <= set(arrived) or any(
        _figures(arrived[a]) != _expected(states, a) for a in arrived
    ):
        event = client.next(max(started + 10 - time.monotonic(), 0.01))
        assert event is not None, f"the change did not arrive; got {list(arrived)}"
        assert event.event == "area"
        assert event.id is not None
        arrived[event.data["area_code"]] = event
    return event.id


def test_snapshot_live_change_and_resume(
    reporting_url: str, broker: DisposableBroker, fresh_database: str
) -> None:
    params = {"year": str(YEAR), "areas": FOLLOWED, "mask": MASK, "card": CARD}
    url = f"{reporting_url}/v1/stream"
    _, stream = random_stream(21)
    produce(broker.bootstrap, stream)
    states = final_states(stream)
    _settle(broker.bootstrap, fresh_database)

    client = SseClient(url, params)
    try:
        _check_snapshot(client, states)
        # A status produced to the broker reaches the client as events, within a second.
        changed = _moved_to_mukdahan(states, 1)
        started = time.monotonic()
        produce(broker.bootstrap, changed)
        states = final_states(stream + changed)
        last_id = _receive_change(client, states, started)
        latency = time.monotonic() - started
        print(f"status produced -> its SSE events: {latency:.3f} s")
        assert latency < 1.0
    finally:
        client.close()

    # Missed while away: a resume from the last ID gets each changed area once, with its
    # newest figures, and nothing it already had.
    more = _moved_to_mukdahan(states, 4)[1:]
    produce(broker.bootstrap, more)
    states = final_states(stream + changed + more)
    _settle(broker.bootstrap, fresh_database)
    resumed = SseClient(url, params, last_event_id=last_id)
    try:
        missed, ready = resumed.until_ready()
        assert ready.data["resumed"] is True
        codes = [e.data["area_code"] for e in missed]
        assert len(codes) == len(set(codes)), f"an area sent twice: {codes}"
        assert {"TH", "49", "4901"} <= set(codes)
        assert set(codes) <= {"TH", "49", "4901", "30", "4902"}  # with the moved persons' old areas
        for event in missed:
            assert _figures(event) == _expected(states, event.data["area_code"])
        assert resumed.next(1.0) is None  # nothing more: no area comes again
    finally:
        resumed.close()

    # An ID that is not ours gets a whole snapshot; a bad area list is refused.
    fresh = SseClient(url, params, last_event_id="not-an-id")
    try:
        _check_snapshot(fresh, states)
    finally:
        fresh.close()
    refused = httpx.get(url, params={**params, "areas": "TH,49010101*"}, timeout=10)
    assert refused.status_code == 422
