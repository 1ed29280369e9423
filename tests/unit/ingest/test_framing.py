"""Cutting bodies into records: chunk boundaries, line numbers, limits, CSV layouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.examples import as_csv, as_json, as_ndjson, records, write_examples
from services.ingest.framing import (
    RawRecord,
    RequestRejectedError,
    csv_records,
    json_array_records,
    ndjson_records,
    split_lines,
)
from services.ingest.sources import BMN, SOURCES, WELFARE, Source

LIMIT = 1024


async def chunked(data: bytes, sizes: Iterable[int]) -> AsyncIterator[bytes]:
    position = 0
    for size in sizes:
        if position >= len(data):
            break
        yield data[position : position + size]
        position += size
    if position < len(data):
        yield data[position:]


def collect(iterator: AsyncIterator[RawRecord]) -> list[RawRecord]:
    async def run() -> list[RawRecord]:
        return [r async for r in iterator]

    return asyncio.run(run())


def lines_of(data: bytes, sizes: Iterable[int], limit: int = LIMIT) -> list[tuple[int, bytes, int]]:
    async def run() -> list[tuple[int, bytes, int]]:
        return [
            (line.number, line.data, line.size)
            async for line in split_lines(chunked(data, sizes), limit)
        ]

    return asyncio.run(run())


@given(
    st.lists(
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")), max_size=10
    ),
    st.lists(st.integers(1, 30), min_size=1, max_size=50),
)
def test_lines_do_not_depend_on_chunk_boundaries(lines: list[bytes], sizes: list[int]) -> None:
    data = b"\n".join(lines)
    expected = [(i + 1, line, len(line)) for i, line in enumerate(lines)]
    if lines and not lines[-1]:
        expected.pop()  # an empty segment after the last newline is no line
    assert lines_of(data, sizes) == expected


def test_crlf_and_final_line_without_newline() -> None:
    assert lines_of(b"a\r\nb\r\nc", [2, 2, 2]) == [(1, b"a", 1), (2, b"b", 1), (3, b"c", 1)]


def test_an_endless_line_is_cut_to_the_limit_in_bounded_memory() -> None:
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(2000):  # 2000 x 64 KiB = 128 MiB without a newline
            yield b"x" * 65536
        yield b"\nok"

    async def run() -> list[tuple[int, int, int]]:
        return [
            (line.number, len(line.data), line.size) async for line in split_lines(endless(), LIMIT)
        ]

    assert asyncio.run(run()) == [(1, LIMIT, 2000 * 65536), (2, 2, 2)]


def test_ndjson_skips_blank_lines_and_numbers_records_and_lines() -> None:
    body = b'{"a": 1}\n\n   \n{"b": 2}\n'
    found = collect(ndjson_records(chunked(body, [3] * 20), LIMIT))
    assert [(r.index, r.line, r.payload) for r in found] == [
        (0, 1, b'{"a": 1}'),
        (1, 4, b'{"b": 2}'),
    ]


def test_oversized_ndjson_record_is_kept_truncated_and_refused() -> None:
    body = b'{"x": "' + b"y" * 5000 + b'"}\n{}\n'
    first, second = collect(ndjson_records(chunked(body, [4096]), LIMIT))
    assert first.truncated
    assert len(first.payload) == LIMIT
    assert "the limit is 1024 bytes" in first.problems[0].message
    assert not second.problems


def test_json_array_elements() -> None:
    found = list(json_array_records('[{"a": 1}, 5, {"b": "ไทย"}]'.encode(), LIMIT))
    assert [r.index for r in found] == [0, 1, 2]
    assert found[1].problems[0].message == "expected a JSON object, got int"
    assert found[2].decoded == {"b": "ไทย"}
    assert orjson.loads(found[2].payload) == {"b": "ไทย"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not valid JSON"),
        (b'{"a": 1}', "expected a JSON array"),
        (b"\xff[]", "not valid JSON"),
    ],
)
def test_json_bodies_that_are_not_arrays(body: bytes, message: str) -> None:
    with pytest.raises(RequestRejectedError, match=message):
        list(json_array_records(body, LIMIT))


@pytest.mark.parametrize("source", list(SOURCES.values()), ids=list(SOURCES))
def test_the_three_example_formats_carry_the_same_records(source: Source) -> None:
    from_json = [r.decoded for r in json_array_records(as_json(source), LIMIT)]
    ndjson = collect(ndjson_records(chunked(as_ndjson(source), [7] * 999), LIMIT))
    from_csv = collect(csv_records(chunked(as_csv(source), [5] * 9999), source, LIMIT))
    assert from_json == [orjson.loads(r.payload) for r in ndjson] == records(source)
    assert len(from_csv) == len(from_json)
    assert not any(r.problems for r in from_csv)


def test_csv_groups_member_rows_into_households() -> None:
    (household,) = collect(csv_records(chunked(as_csv(BMN), [64] * 999), BMN, LIMIT))
    assert household.decoded is not None
    assert household.line == 2
    members = household.decoded["members"]
    assert isinstance(members, list)
    assert [m["age"] for m in members] == [64, 9]
    assert household.decoded["indicators"] == {
        "4": "pass",
        "5": "pass",
        "8": "fail",
        "9": "pass",
        "22": "fail",
    }
    assert members[0]["indicators"] == {"21": "fail", "27": "pass"}
    assert members[0]["chronic_patient"] is True
    assert household.payload.startswith(b"household_id,")


def test_csv_household_columns_must_repeat_identically() -> None:
    lines = as_csv(BMN).decode().splitlines()
    lines[2] = lines[2].replace("45 หมู่ 1", "46 หมู่ 1")
    (household,) = collect(csv_records(chunked("\n".join(lines).encode(), [999]), BMN, LIMIT))
    assert [p.field for p in household.problems] == ["house_no"]
    assert "line 3 has" in household.problems[0].message


def test_csv_quoted_field_may_span_lines_and_bom_is_ignored() -> None:
    body = '\ufeffcitizen_id,round,status,updated_at,village_code\n"9490100000118",2560,verified,"2017-12-01\nT09:00",49010101\n'
    (row,) = collect(csv_records(chunked(body.encode(), [3] * 999), WELFARE, LIMIT))
    assert row.decoded == {
        "citizen_id": "9490100000118",
        "round": 2560,
        "status": "verified",
        "updated_at": "2017-12-01\nT09:00",
        "village_code": "49010101",
    }


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("citizen_id,round,status", "missing required columns updated_at"),
        ("citizen_id,round,status,updated_at,colour", "unknown columns colour"),
        ("citizen_id,round,status,updated_at,round", "repeated columns round"),
    ],
)
def test_csv_header_problems_refuse_the_body(header: str, message: str) -> None:
    with pytest.raises(RequestRejectedError, match=message):
        collect(csv_records(chunked(f"{header}\n".encode(), [999]), WELFARE, LIMIT))


def test_csv_row_problems_are_per_record() -> None:
    body = b"citizen_id,round,status,updated_at\n1,2,3\n9490100000118,2560,verified,\xff\xfe\n"
    short, bad_utf8 = collect(csv_records(chunked(body, [999]), WELFARE, LIMIT))
    assert "has 3 fields; the header has 4" in short.problems[0].message
    assert "not valid UTF-8" in bad_utf8.problems[0].message
    assert bad_utf8.payload.endswith(b"\xff\xfe")


def test_committed_examples_are_current(tmp_path: Path) -> None:
    committed = Path(__file__).parents[3] / "docs" / "examples"
    fresh = {p.name: p.read_bytes() for p in write_examples(tmp_path)}
    assert fresh == {p.name: p.read_bytes() for p in committed.iterdir()}, "run make schemas"


def test_csv_that_the_csv_module_cannot_read_is_refused_not_crashed() -> None:
    # Found by the fuzz test: a carriage return inside an unquoted field.
    with pytest.raises(RequestRejectedError, match="CSV header cannot be read"):
        collect(
            csv_records(chunked(b"\rcitizen_id,round,status,updated_at\n", [999]), WELFARE, LIMIT)
        )
    body = b"citizen_id,round,status,updated_at\n94901\r00000118,2560,verified,2017-12-01\n"
    (row,) = collect(csv_records(chunked(body, [999]), WELFARE, LIMIT))
    assert "cannot be read as CSV" in row.problems[0].message
