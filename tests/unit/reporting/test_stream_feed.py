"""The stream's pure part: positions as event IDs, area selections, the newest message per area,
resuming without loss or repeats, and the SSE wire format."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.events import envelope
from services.contracts.topics import AREA_AGGREGATES
from services.reporting.aggregates import area_aggregate
from services.reporting.contributions import figures
from services.reporting.stream_feed import (
    AreaMessage,
    AreaSelection,
    FeedState,
    Pending,
    Position,
    area_payload,
    parse_key,
    sse,
)

PARTITIONS = 3
AREAS = ("TH", "49", "4901", "490101", "49010101", "49010102", "30", "3001")


def test_a_position_round_trips_as_an_event_id() -> None:
    position = Position((12, 0, 7))
    assert position.encode() == "12.0.7"
    assert Position.decode("12.0.7", PARTITIONS) == position
    for foreign in (None, "", "12.0", "12.0.7.1", "a.b.c", "-1.0.0", "1..2"):
        assert Position.decode(foreign, PARTITIONS) is None


def test_positions_cover_reach_and_advance() -> None:
    position = Position((3, 0, 5))
    assert position.covers(0, 2)
    assert not position.covers(0, 3)
    assert position.after(1, 9) == Position((3, 10, 5))
    assert position.after(0, 1) == position  # never backwards
    assert position.reaches(Position((3, 0, 4)))
    assert not position.reaches(Position((4, 0, 0)))


def test_an_area_selection_names_areas_and_children() -> None:
    selection = AreaSelection.parse(2561, "TH, TH*,4901*")
    assert selection.wants((2561, "TH"))
    assert selection.wants((2561, "49"))
    assert selection.wants((2561, "490101"))
    assert not selection.wants((2561, "4901"))
    assert not selection.wants((2562, "TH"))
    assert not selection.wants((2561, "49010101"))
    for bad in ("", "4", "TH,x", "49010101*", "TH**"):
        with pytest.raises(ValueError, match="not an area code"):
            AreaSelection.parse(2561, bad)


def test_keys_are_year_and_area() -> None:
    assert parse_key(b"2561:49") == (2561, "49")
    assert parse_key(b"2561:TH") == (2561, "TH")
    for bad in (None, b"49", b"x:49", b"2561:4", b"\xff:49"):
        assert parse_key(bad) is None


def test_the_feed_keeps_the_newest_message_per_area() -> None:
    state = FeedState(PARTITIONS)
    state.apply(0, 0, b"2561:49", b"old")
    state.apply(1, 0, b"2561:4901", b"district")
    state.apply(0, 1, b"2561:49", b"new")
    assert state.apply(2, 0, b"junk", b"x") is None
    assert state.apply(2, 1, b"2561:30", None) is None  # a tombstone of an area never sent
    assert state.position == Position((2, 1, 2))
    selection = AreaSelection.parse(2561, "TH,49,49*")
    assert [(m.key[1], m.value) for m in state.selected(selection, None)] == [
        ("49", b"new"),
        ("4901", b"district"),
    ]
    state.apply(1, 1, b"2561:4901", None)
    assert [m.key[1] for m in state.selected(selection, None)] == ["49"]


def test_parents_come_before_children_in_a_snapshot() -> None:
    state = FeedState(PARTITIONS)
    for offset, code in enumerate(reversed(AREAS)):
        state.apply(offset % PARTITIONS, offset, f"2561:{code}".encode(), b"v")
    selection = AreaSelection.parse(2561, ",".join(AREAS))
    assert [m.key[1] for m in state.selected(selection, None)] == [
        "TH",
        "30",
        "49",
        "3001",
        "4901",
        "490101",
        "49010101",
        "49010102",
    ]


def test_pending_keeps_the_newest_message_per_area_in_reading_order() -> None:
    pending = Pending()
    a1, b1, a2 = (
        AreaMessage((2561, "49"), 0, 0, b"a1"),
        AreaMessage((2561, "30"), 1, 0, b"b1"),
        AreaMessage((2561, "49"), 0, 1, b"a2"),
    )
    pending.add(a1, Position((1, 0, 0)))
    pending.add(b1, Position((1, 1, 0)))
    pending.add(a2, Position((2, 1, 0)))
    assert pending
    assert pending.take() == [(b1, Position((1, 1, 0))), (a2, Position((2, 1, 0)))]
    assert not pending


@given(
    st.lists(
        st.tuples(st.integers(0, PARTITIONS - 1), st.sampled_from(AREAS), st.integers(0, 9)),
        max_size=60,
    ),
    st.integers(0, 60),
    st.randoms(use_true_random=False),
)
def test_a_client_resuming_from_any_event_id_ends_with_every_newest_state_once(
    messages: list[tuple[int, str, int]], cut: int, rng: random.Random
) -> None:
    """A client follows some areas, receives events up to some ID, and reconnects with it: the
    resume sends exactly the followed areas that changed after that ID, each once, and the
    client then holds the newest value of every followed area."""
    selection = AreaSelection.parse(2561, ",".join(rng.sample(AREAS, 4)))
    state = FeedState(PARTITIONS)
    offsets = [0] * PARTITIONS
    client: dict[str, bytes] = {}
    newest_index: dict[str, int] = {}
    last_seen: int | None = None  # index of the last message the client received
    last_id: Position | None = None
    for n, (partition, code, value) in enumerate(messages):
        message = state.apply(partition, offsets[partition], f"2561:{code}".encode(), b"%d" % value)
        offsets[partition] += 1
        assert message is not None
        newest_index[code] = n
        if n < cut and selection.wants(message.key):
            client[code] = message.value
            last_seen, last_id = n, state.position
    resumed = [m.key[1] for m in state.selected(selection, last_id)]
    assert len(resumed) == len(set(resumed))
    assert set(resumed) == {
        code
        for code, n in newest_index.items()
        if selection.wants((2561, code)) and (last_seen is None or n > last_seen)
    }
    client.update({m.key[1]: m.value for m in state.selected(selection, last_id)})
    assert client == {m.key[1]: m.value for m in state.selected(selection, None)}


def test_an_area_payload_answers_like_the_api_for_a_mask_and_card() -> None:
    counters = {"persons": 10, "households": 4, "pp:10100:card": 3, "pt:10100:card": 2}
    as_of = datetime(2026, 11, 23, tzinfo=UTC)
    event = envelope(
        AREA_AGGREGATES.require_event_type(),
        "/reporting",
        area_aggregate(2561, "49", counters, as_of),
        subject="2561:49",
    )
    message = AreaMessage((2561, "49"), 0, 0, event.model_dump_json().encode())
    payload = area_payload(message, "10000", "card")
    expected = orjson.loads(figures(counters, "10000", "card").model_dump_json())
    assert {k: v for k, v in payload.items() if k in expected} == {
        k: v for k, v in expected.items() if k not in ("deceased", "unplaced")
    }
    assert (payload["area_code"], payload["level"], payload["name_en"]) == (
        "49",
        "province",
        "Mukdahan",
    )
    assert "deceased" not in payload
    assert payload["target_persons"] == 2


def test_the_sse_wire_format() -> None:
    assert sse("area", {"a": 1}, "1.2") == b'event: area\nid: 1.2\ndata: {"a":1}\n\n'
    assert sse("ready", {"b": "ไทย"}) == 'event: ready\ndata: {"b":"ไทย"}\n\n'.encode()
