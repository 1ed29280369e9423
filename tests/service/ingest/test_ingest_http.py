"""The ingest HTTP API against the real broker and PostgreSQL."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import orjson
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from services.contracts.events import Envelope, RejectedRecord
from services.contracts.records import parse_record
from services.contracts.topics import INGEST_REJECTED
from services.ingest.examples import as_csv, as_json, as_ndjson, records
from services.ingest.sources import BMN, CIVIL, SOURCES, WELFARE, Source
from tests.service.ingest.conftest import (
    MAX_BODY,
    MAX_JSON_BODY,
    MAX_RECORD,
    IngestServer,
    TopicTail,
)
from tests.synthetic import citizen_id, household

pytestmark = pytest.mark.stack

FORMATS = {"application/json": as_json, "application/x-ndjson": as_ndjson, "text/csv": as_csv}
AGENCY_OF = {"bmn": "CDD", "welfare": "MOF", "civil": "DOPA"}


def post(
    server: IngestServer,
    source: Source,
    body: bytes,
    content_type: str,
    key: str | None,
    **headers: str,
) -> httpx.Response:
    sent = {"content-type": content_type, **headers}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    return httpx.post(f"{server.url}{source.path}", content=body, headers=sent, timeout=30)


@pytest.mark.parametrize("source", list(SOURCES.values()), ids=list(SOURCES))
def test_valid_records_in_every_format_reach_their_topic(
    source: Source, ingest: IngestServer, ingest_keys: dict[str, str], kafka_bootstrap: str
) -> None:
    tail = TopicTail(kafka_bootstrap, source.topic.name)
    for content_type, render in FORMATS.items():
        response = post(
            ingest, source, render(source), content_type, ingest_keys[AGENCY_OF[source.name]]
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(records(source))
        assert response.json()["rejected"] == []
    messages: list[ConsumerRecord] = tail.read(3 * len(records(source)))  # type: ignore[assignment]
    expected = [parse_record(source.model, r) for r in records(source)]
    by_id: dict[str, list[Envelope[Any]]] = {}
    for message in messages:
        event = Envelope[source.model].model_validate_json(message.value)  # type: ignore[name-defined]
        assert event.type == source.event_type
        assert event.source == f"/ingest/{AGENCY_OF[source.name]}"
        assert event.data in expected
        assert message.key.decode() == event.subject
        by_id.setdefault(event.id, []).append(event)
    # The same record in three formats is the same event: one id, sent three times.
    assert len(by_id) == len(expected)
    assert all(len(events) == 3 for events in by_id.values())


def _ndjson(*lines: object) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


def _changed(change: Any) -> dict[str, Any]:
    record = household()
    change(record)
    return record


WRONG_DIGIT = citizen_id(1)[:12] + str((int(citizen_id(1)[12]) + 1) % 10)
CSV_HEADER = ",".join(BMN.csv_columns)

# (name, source, content type, body, status, field, reason): per-record rejections answer 200.
BAD_INPUTS: list[tuple[str, Source, str, bytes, int, str, str]] = [
    (
        "malformed JSON",
        BMN,
        "application/json",
        b'[{"household_id": ',
        400,
        "(body)",
        "not valid JSON",
    ),
    (
        "JSON not an array",
        BMN,
        "application/json",
        b'{"household_id": "x"}',
        400,
        "(body)",
        "expected a JSON array",
    ),
    (
        "malformed NDJSON line",
        BMN,
        "application/x-ndjson",
        b'{"household_id": \n',
        200,
        "(record)",
        "Invalid JSON",
    ),
    (
        "wrong check digit",
        BMN,
        "application/x-ndjson",
        _ndjson(_changed(lambda r: r["members"][0].update(citizen_id=WRONG_DIGIT))),
        200,
        "members.0.citizen_id",
        "check digit",
    ),
    (
        "unknown village prefix",
        BMN,
        "application/x-ndjson",
        _ndjson(household(village_code="99010101")),
        200,
        "village_code",
        "unknown province 99",
    ),
    (
        "age outside an indicator's range",
        BMN,
        "application/x-ndjson",
        _ndjson(_changed(lambda r: r["members"][0]["indicators"].update({"15": "fail"}))),
        200,
        "members.0.indicators.15",
        "applies to ages 3-5",
    ),
    (
        "contradictory income",
        BMN,
        "application/x-ndjson",
        _ndjson(_changed(lambda r: r["indicators"].update({"22": "pass"}))),
        200,
        "indicators.22",
        "implies fail",
    ),
    (
        "duplicate members",
        BMN,
        "application/x-ndjson",
        _ndjson(_changed(lambda r: r["members"][1].update(citizen_id=citizen_id(1)))),
        200,
        "members.1.citizen_id",
        "appears twice",
    ),
    (
        "missing field",
        BMN,
        "application/x-ndjson",
        _ndjson(_changed(lambda r: r.pop("village_code"))),
        200,
        "village_code",
        "Field required",
    ),
    (
        "wrong type",
        BMN,
        "application/x-ndjson",
        _ndjson(_changed(lambda r: r["members"][0].update(age="42"))),
        200,
        "members.0.age",
        "valid integer",
    ),
    (
        "empty household",
        BMN,
        "application/x-ndjson",
        _ndjson(household(members=[])),
        200,
        "members",
        "at least 1 item",
    ),
    (
        "huge field",
        BMN,
        "application/x-ndjson",
        _ndjson(household(house_no="ก" * 5000)),
        200,
        "house_no",
        "at most 40",
    ),
    (
        "record over the size limit",
        BMN,
        "application/x-ndjson",
        _ndjson(household(house_no="x" * (MAX_RECORD + 10))),
        200,
        "(record)",
        "the limit is",
    ),
    (
        "bad UTF-8",
        BMN,
        "application/x-ndjson",
        orjson.dumps(household()).replace("หมู่".encode(), b"\xff\xfe") + b"\n",
        200,
        "(record)",
        "not valid UTF-8",
    ),
    (
        "CSV with a missing column",
        BMN,
        "text/csv",
        b"household_id,survey_year,citizen_id,age,sex\n",
        400,
        "(header)",
        "missing required columns village_code",
    ),
    (
        "CSV with an unknown column",
        WELFARE,
        "text/csv",
        b"citizen_id,round,status,updated_at,colour\n",
        400,
        "(header)",
        "unknown columns colour",
    ),
    (
        "CSV row with too few fields",
        WELFARE,
        "text/csv",
        b"citizen_id,round,status,updated_at\n" + citizen_id(1).encode() + b",2560\n",
        200,
        "(record)",
        "has 2 fields; the header has 4",
    ),
    (
        "CSV household columns disagree",
        BMN,
        "text/csv",
        as_csv(BMN).replace(b"2018-03-15,31500", b"2018-03-16,31500", 1),
        200,
        "surveyed_on",
        "household columns repeat",
    ),
    (
        "CE survey year",
        BMN,
        "application/x-ndjson",
        _ndjson(household(survey_year=2018)),
        200,
        "survey_year",
        "CE + 543",
    ),
    (
        "unknown field",
        BMN,
        "application/x-ndjson",
        _ndjson(household(colour="red")),
        200,
        "colour",
        "unknown field",
    ),
    (
        "welfare status unknown",
        WELFARE,
        "application/x-ndjson",
        _ndjson(
            {
                "citizen_id": citizen_id(1),
                "round": 2560,
                "status": "approved",
                "updated_at": "2018-01-01T00:00:00",
            }
        ),
        200,
        "status",
        "'verified'",
    ),
    (
        "civil event other than death",
        CIVIL,
        "application/json",
        orjson.dumps([{"citizen_id": citizen_id(1), "event": "birth", "date": "2018-01-01"}]),
        200,
        "event",
        "'death'",
    ),
    (
        "death date in the future",
        CIVIL,
        "text/csv",
        b"citizen_id,event,date\n" + citizen_id(1).encode() + b",death,2999-01-01\n",
        200,
        "date",
        "in the future",
    ),
    (
        "array element not an object",
        WELFARE,
        "application/json",
        b"[1]",
        200,
        "(record)",
        "expected a JSON object",
    ),
    (
        "JSON body over its limit",
        BMN,
        "application/json",
        b"[" + b" " * MAX_JSON_BODY + b"]",
        413,
        "(body)",
        "over the",
    ),
    (
        "stream over the upload limit",
        BMN,
        "application/x-ndjson",
        b"\n" * (MAX_BODY + 1),
        413,
        "(body)",
        "over the",
    ),
    (
        "unknown content type",
        BMN,
        "application/xml",
        b"<household/>",
        415,
        "(body)",
        "not supported",
    ),
]


@pytest.mark.parametrize(
    ("source", "content_type", "body", "status", "field", "reason"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused_with_field_and_reason_and_kept(
    source: Source,
    content_type: str,
    body: bytes,
    status: int,
    field: str,
    reason: str,
    ingest: IngestServer,
    ingest_keys: dict[str, str],
    kafka_bootstrap: str,
) -> None:
    rejected_tail = TopicTail(kafka_bootstrap, INGEST_REJECTED.name)
    accepted_tail = TopicTail(kafka_bootstrap, source.topic.name)
    response = post(ingest, source, body, content_type, ingest_keys["ALL"])
    assert response.status_code == status, response.text
    reply = response.json()
    errors = (
        reply["errors"] if status != 200 else [e for r in reply["rejected"] for e in r["errors"]]
    )
    assert any(e["field"] == field and reason in e["message"] for e in errors), errors
    if status == 200:
        assert reply["accepted"] == 0
        assert reply["rejected_count"] == len(reply["rejected"]) >= 1
    (message,) = rejected_tail.read(1)
    kept = Envelope[RejectedRecord].model_validate_json(message.value).data  # type: ignore[attr-defined]
    assert kept.request_id == reply["request_id"]
    assert kept.agency == "ALL"
    assert any(e.field == field and reason in e.message for e in kept.errors)
    if status == 200 and not kept.truncated:
        original = (
            kept.payload.encode()
            if kept.payload_encoding == "utf-8"
            else base64.b64decode(kept.payload)
        )
        assert original in body
    accepted_tail.read(0)


def test_at_least_twenty_kinds_of_bad_input() -> None:
    assert len(BAD_INPUTS) >= 20


def test_a_batch_answers_per_record_with_index_and_line(
    ingest: IngestServer, ingest_keys: dict[str, str]
) -> None:
    good = household(household_id="49-good")
    bad = household(household_id="49-bad", village_code="49990101")
    response = post(
        ingest, BMN, _ndjson(good, bad, good), "application/x-ndjson", ingest_keys["CDD"]
    )
    reply = response.json()
    assert reply["accepted"] == 2
    assert [(r["index"], r["line"]) for r in reply["rejected"]] == [(1, 2)]


@pytest.mark.parametrize(
    ("key", "source", "status"),
    [
        (None, BMN, 401),
        ("tpk_000000000000_nope", BMN, 401),
        ("not-a-key", BMN, 401),
        ("MOF", BMN, 403),
        ("CDD", CIVIL, 403),
    ],
)
def test_keys_and_sources(
    key: str | None, source: Source, status: int, ingest: IngestServer, ingest_keys: dict[str, str]
) -> None:
    token = ingest_keys.get(key, key) if key else None
    response = post(ingest, source, as_ndjson(source), "application/x-ndjson", token)
    assert response.status_code == status
    assert response.json()["detail"]


def test_idempotency_key_replays_the_first_reply(
    ingest: IngestServer, ingest_keys: dict[str, str], kafka_bootstrap: str
) -> None:
    tail = TopicTail(kafka_bootstrap, BMN.topic.name)
    idempotency_key = f"batch-{uuid.uuid4()}"  # the database outlives a test session
    body = _ndjson(household(household_id="49-idem-1"), household(household_id="49-idem-2"))
    first = post(
        ingest,
        BMN,
        body,
        "application/x-ndjson",
        ingest_keys["CDD"],
        **{"Idempotency-Key": idempotency_key},
    )
    again = post(
        ingest,
        BMN,
        body,
        "application/x-ndjson",
        ingest_keys["CDD"],
        **{"Idempotency-Key": idempotency_key},
    )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    tail.read(2)  # published once
    other = post(
        ingest, BMN, body, "text/csv", ingest_keys["CDD"], **{"Idempotency-Key": idempotency_key}
    )
    assert other.status_code == 409
    assert "different request" in other.json()["detail"]


def test_health_and_readiness(ingest: IngestServer) -> None:
    assert httpx.get(f"{ingest.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{ingest.url}/readyz").json() == {
        "status": "ready",
        "kafka": True,
        "postgres": True,
    }


def test_openapi_documents_formats_with_thai_examples(ingest: IngestServer) -> None:
    document = httpx.get(f"{ingest.url}/openapi.json").json()
    body = document["paths"]["/v1/bmn/households"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson", "text/csv"}
    assert "หมู่" in body["text/csv"]["example"]
    assert "BmnHousehold" in document["components"]["schemas"]
    assert "Member" in document["components"]["schemas"]


def test_keys_cli_creates_lists_and_revokes(ingest: IngestServer, database_url: str) -> None:
    def cli(*args: str) -> str:
        env = {**os.environ, "DATABASE_URL": database_url}
        done = subprocess.run(
            [sys.executable, "-m", "services.ingest", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    token = cli("create", "--agency", "NSO", "--source", "welfare").strip()
    key_id = token.split("_")[1]
    assert (
        post(ingest, WELFARE, as_ndjson(WELFARE), "application/x-ndjson", token).status_code == 200
    )
    listed = cli("list")
    assert key_id in listed
    assert token.split("_", 2)[2] not in listed  # the secret is never shown again
    cli("revoke", key_id)
    assert (
        post(ingest, WELFARE, as_ndjson(WELFARE), "application/x-ndjson", token).status_code == 401
    )
    assert f"{key_id}  NSO" in cli("list")
