from datetime import UTC, datetime
from pathlib import Path

import orjson

from services.contracts.events import (
    EVENT_TYPES,
    Envelope,
    LogbookEventData,
    PersonStatus,
    VisitRecorded,
    content_id,
    envelope,
    envelope_json,
)
from services.contracts.indicators import Dimension
from services.contracts.records import BmnHousehold, parse_record
from services.contracts.schemas import all_schemas, write_schemas
from services.contracts.topics import TOPICS, TOPICS_BY_NAME
from tests.synthetic import citizen_id, household

BMN_TYPE = "th.tpmap.bmn.household.v1"


def test_event_id_depends_on_content_only() -> None:
    record = parse_record(BmnHousehold, household())
    first = envelope(BMN_TYPE, "/ingest/CDD", record, subject=record.household_id)
    resent = envelope(BMN_TYPE, "/ingest/kafka", record, time=datetime(2020, 1, 1, tzinfo=UTC))
    assert first.id == resent.id
    changed = parse_record(BmnHousehold, household(happiness_score=3.0))
    assert envelope(BMN_TYPE, "/ingest/CDD", changed).id != first.id
    assert content_id("th.tpmap.other.v1", record) != first.id


def test_envelope_round_trips_thai_text_as_utf8() -> None:
    record = parse_record(BmnHousehold, household())
    wrapped = envelope(BMN_TYPE, "/ingest/CDD", record, subject=record.household_id)
    raw = wrapped.model_dump_json().encode()
    assert "12/3 หมู่ 1".encode() in raw  # not \\u-escaped
    decoded = Envelope[BmnHousehold].model_validate_json(raw)
    assert decoded == wrapped
    assert {"specversion", "id", "type", "source", "time", "subject", "data"} <= orjson.loads(
        raw
    ).keys()


def test_envelope_json_is_the_envelope_as_json() -> None:
    record = parse_record(BmnHousehold, household())
    at = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)
    raw = envelope_json(BMN_TYPE, "/ingest/CDD", record, subject=record.household_id, time=at)
    wrapped = envelope(BMN_TYPE, "/ingest/CDD", record, subject=record.household_id, time=at)
    assert Envelope[BmnHousehold].model_validate_json(raw) == wrapped
    assert orjson.loads(raw) == orjson.loads(wrapped.model_dump_json())
    assert "12/3 หมู่ 1".encode() in raw  # not \\u-escaped


def test_consumers_ignore_unknown_fields() -> None:
    status = {
        "citizen_id": citizen_id(1),
        "survey_year": 2561,
        "household_id": "h",
        "village_code": "49010101",
        "person_class": "target",
        "deprivation": ["health"],
        "failed_indicators": [7],
        "applicable_indicators": [7],
        "welfare_status": "verified",
        "age_band": "15-59",
        "version": 1,
        "added_in_a_later_version": {"x": 1},
    }
    raw = orjson.dumps(
        {
            "id": "1",
            "type": "t",
            "source": "/matcher",
            "time": "2018-01-01T00:00:00Z",
            "data": status,
            "traceparent": "00-abc",
        }
    )
    decoded = Envelope[PersonStatus].model_validate_json(raw)
    assert decoded.data.deprivation == [Dimension.HEALTH]


def test_logbook_events_are_told_apart_by_kind() -> None:
    data = LogbookEventData.model_validate(
        {
            "event": {
                "kind": "visit_recorded",
                "household_id": "h",
                "survey_year": 2561,
                "village_code": "49010101",
                "case_id": "c1",
                "actor": "u1",
                "occurred_at": "2018-01-01T00:00:00Z",
                "visit_id": "v1",
                "visited_on": "2018-01-01",
            }
        }
    )
    assert isinstance(data.event, VisitRecorded)


def test_topic_registry_rules() -> None:
    assert len({t.name for t in TOPICS}) == len(TOPICS)
    for topic in TOPICS:
        assert topic.name.endswith(".v1")
        assert topic.partitions >= 6
        assert topic.event_type is None or topic.event_type in EVENT_TYPES
    for name in (
        "targeting.person-status.v1",
        "targeting.household-status.v1",
        "reporting.area-aggregates.v1",
    ):
        assert TOPICS_BY_NAME[name].cleanup_policy == "compact"
        assert "retention.ms" not in TOPICS_BY_NAME[name].configs()
    assert TOPICS_BY_NAME["bmn.households.v1"].configs() == {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
    }


def test_every_record_and_event_has_a_schema(tmp_path: Path) -> None:
    schemas = all_schemas()
    assert {f"event.{t}.schema.json" for t in EVENT_TYPES} <= schemas.keys()
    assert "record.bmn-household.schema.json" in schemas
    written = write_schemas(tmp_path)
    assert len(written) == len(schemas)
    envelope_schema = orjson.loads(written[0].read_bytes())
    assert {"id", "type", "source", "time", "data"} <= set(envelope_schema["properties"])


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    committed = Path(__file__).parents[2] / "docs" / "schemas"
    fresh = {p.name: p.read_bytes() for p in write_schemas(tmp_path)}
    assert fresh == {p.name: p.read_bytes() for p in committed.glob("*.schema.json")}, (
        "run make schemas"
    )
