"""Cutting a request body into records: JSON arrays, NDJSON and CSV, streamed in bounded memory.

No I/O here: the functions take the body (or an async iterator of its chunks) and yield
`RawRecord`s, each with its position, its line and its bytes as sent, so a rejection can point at
the record and keep it. Problems that make the whole body unreadable (not a JSON array, a CSV
header without a required column) raise `RequestRejectedError`.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import orjson

from services.contracts.indicators import IndicatorSet, indicator_set_for, indicator_sets
from services.contracts.records import MAX_MEMBERS, FieldError
from services.ingest.sources import (
    BMN_HOUSEHOLD_COLUMNS,
    BMN_MEMBER_COLUMNS,
    Source,
)

RECORD = "(record)"
_INT_COLUMNS = frozenset({"survey_year", "age", "round"})
_FLOAT_COLUMNS = frozenset({"income_per_capita_baht", "happiness_score"})
_BOOL_COLUMNS = frozenset({"disabled", "chronic_patient", "bedridden"})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as sent, before validation."""

    index: int | None
    line: int | None
    payload: bytes = field(repr=False)
    payload_bytes: int
    decoded: dict[str, object] | None = field(default=None, repr=False)
    problems: tuple[FieldError, ...] = ()

    @property
    def truncated(self) -> bool:
        return self.payload_bytes > len(self.payload)


class RequestRejectedError(Exception):
    """The body as a whole cannot be read; nothing in it is accepted."""

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or [FieldError(field="(body)", message=message)]


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    data: bytes
    size: int

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


def _too_large(size: int, limit: int) -> FieldError:
    return FieldError(field=RECORD, message=f"record is {size} bytes; the limit is {limit} bytes")


async def split_lines(chunks: AsyncIterator[bytes], max_line_bytes: int) -> AsyncIterator[Line]:
    """Lines of a byte stream (LF or CRLF), numbered from 1. A line longer than the limit keeps
    only its first `max_line_bytes`, so memory stays bounded whatever is sent."""
    number = 0
    head = b""  # the start of the current line, at most max_line_bytes of it
    size = 0  # the current line's full size so far
    async for chunk in chunks:
        parts = chunk.split(b"\n")
        for part in parts[:-1]:
            number += 1
            data = (head + part)[:max_line_bytes] if head else part[:max_line_bytes]
            full = size + len(part)
            if data.endswith(b"\r") and full <= max_line_bytes:
                data, full = data[:-1], full - 1
            yield Line(number, data, full)
            head, size = b"", 0
        tail = parts[-1]
        if len(head) < max_line_bytes:
            head = (head + tail)[:max_line_bytes]
        size += len(tail)
    if size:
        yield Line(number + 1, head, size)


async def ndjson_records(
    chunks: AsyncIterator[bytes], max_record_bytes: int
) -> AsyncIterator[RawRecord]:
    """One record per non-blank line."""
    index = 0
    async for line in split_lines(chunks, max_record_bytes):
        if not line.data.strip():
            continue
        problems = (_too_large(line.size, max_record_bytes),) if line.truncated else ()
        yield RawRecord(index, line.number, line.data, line.size, problems=problems)
        index += 1


def json_array_records(body: bytes, max_record_bytes: int) -> Iterator[RawRecord]:
    """The elements of a JSON array, each re-encoded as the payload kept for a rejection."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestRejectedError(f"body is not valid JSON: {error}") from None
    if not isinstance(value, list):
        raise RequestRejectedError(
            f"expected a JSON array of records, got a JSON {type(value).__name__}; "
            "send one record per line as application/x-ndjson to stream"
        )
    for index, element in enumerate(value):
        payload = orjson.dumps(element)
        problems: tuple[FieldError, ...] = ()
        if not isinstance(element, dict):
            problems = (
                FieldError(
                    field=RECORD, message=f"expected a JSON object, got {type(element).__name__}"
                ),
            )
        elif len(payload) > max_record_bytes:
            problems = (_too_large(len(payload), max_record_bytes),)
        yield RawRecord(
            index,
            None,
            payload[:max_record_bytes],
            len(payload),
            decoded=element if isinstance(element, dict) else None,
            problems=problems,
        )


# --- CSV ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _CsvRow:
    line: int
    raw: bytes
    values: dict[str, str]
    problems: list[FieldError]


def _convert(column: str, text: str) -> object:
    """CSV text to the JSON type the contract expects; text that does not convert is passed on
    unchanged so validation names the field and the expected type."""
    value = text.strip()
    try:
        if column in _INT_COLUMNS:
            return int(value)
        if column in _FLOAT_COLUMNS:
            return float(value)
    except ValueError:
        return text
    if column in _BOOL_COLUMNS:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return text


def _present(values: dict[str, str], columns: tuple[str, ...]) -> dict[str, object]:
    return {c: _convert(c, values[c]) for c in columns if values.get(c, "") != ""}


def _read_header(line: Line, source: Source) -> list[str]:
    try:
        text = line.data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestRejectedError(
            f"CSV header is not valid UTF-8: {error.reason} at byte {error.start}"
        ) from None
    try:
        columns = [c.strip() for c in next(csv.reader([text]), [])]
    except csv.Error as error:
        raise RequestRejectedError(f"CSV header cannot be read: {error}") from None
    problems = []
    unknown = [c for c in columns if c not in source.csv_columns]
    if unknown:
        problems.append(f"unknown columns {', '.join(unknown)}")
    missing = [c for c in source.csv_required if c not in columns]
    if missing:
        problems.append(f"missing required columns {', '.join(missing)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        problems.append(f"repeated columns {', '.join(repeated)}")
    if problems:
        raise RequestRejectedError(
            f"CSV header: {'; '.join(problems)}. Columns for {source.name}: {', '.join(source.csv_columns)}",
            [FieldError(field="(header)", message=p) for p in problems],
        )
    return columns


async def _csv_rows(
    lines: AsyncIterator[Line], columns: list[str], max_record_bytes: int
) -> AsyncIterator[_CsvRow]:
    """Rows of the CSV body; a quoted field may span lines."""
    pending: list[Line] = []
    async for line in lines:
        pending.append(line)
        joined = b"\n".join(p.data for p in pending)
        # An odd number of quotes means a quoted field continues on the next line.
        open_quote = joined.count(b'"') % 2 == 1
        if open_quote and len(joined) <= max_record_bytes:
            continue
        row_lines, pending = pending, []
        if joined.strip():
            incomplete = open_quote or any(p.truncated for p in row_lines)
            yield _parse_row(row_lines[0].number, joined, columns, incomplete, max_record_bytes)
    if pending:
        joined = b"\n".join(p.data for p in pending)
        yield _parse_row(pending[0].number, joined, columns, True, max_record_bytes)


def _parse_row(
    number: int, raw: bytes, columns: list[str], truncated: bool, max_record_bytes: int
) -> _CsvRow:
    problems = []
    if truncated:
        problems.append(
            FieldError(
                field=RECORD,
                message=f"line {number} is incomplete or over {max_record_bytes} bytes",
            )
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(
            FieldError(
                field=RECORD,
                message=f"line {number} is not valid UTF-8: {error.reason} at byte {error.start}",
            )
        )
        text = raw.decode("utf-8", errors="replace")
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as error:
        problems.append(
            FieldError(field=RECORD, message=f"line {number} cannot be read as CSV: {error}")
        )
        fields = []
    if len(fields) != len(columns):
        problems.append(
            FieldError(
                field=RECORD,
                message=f"line {number} has {len(fields)} fields; the header has {len(columns)}",
            )
        )
    return _CsvRow(number, raw, dict(zip(columns, fields, strict=False)), problems)


async def csv_records(
    chunks: AsyncIterator[bytes], source: Source, max_record_bytes: int
) -> AsyncIterator[RawRecord]:
    """Records of a CSV body in the source's layout (see docs/examples/)."""
    lines = split_lines(chunks, max_record_bytes)
    header = await anext(lines, None)
    if header is None:
        raise RequestRejectedError("CSV body is empty; the first line must be the header")
    columns = _read_header(header, source)
    rows = _csv_rows(lines, columns, max_record_bytes)
    if source.name == "bmn":
        async for record in _households(rows, header.data):
            yield record
        return
    index = 0
    async for row in rows:
        payload = header.data + b"\n" + row.raw
        yield RawRecord(
            index,
            row.line,
            payload,
            len(payload),
            decoded=_present(row.values, source.csv_columns),
            problems=tuple(row.problems),
        )
        index += 1


async def _households(rows: AsyncIterator[_CsvRow], header: bytes) -> AsyncIterator[RawRecord]:
    """Groups consecutive member rows of one household (same household_id and survey_year)."""
    group: list[_CsvRow] = []
    skipped = 0  # rows beyond MAX_MEMBERS + 1, counted but not kept
    index = 0

    def flush() -> RawRecord:
        return _household_record(index, group, skipped, header)

    async for row in rows:
        key = (row.values.get("household_id"), row.values.get("survey_year"))
        if group and key != (
            group[0].values.get("household_id"),
            group[0].values.get("survey_year"),
        ):
            yield flush()
            index += 1
            group, skipped = [], 0
        if len(group) <= MAX_MEMBERS:
            group.append(row)
        else:
            skipped += 1
    if group:
        yield flush()


def _household_record(index: int, rows: list[_CsvRow], skipped: int, header: bytes) -> RawRecord:
    first = rows[0]
    year = _convert("survey_year", first.values.get("survey_year", ""))
    indicator_set = (
        indicator_set_for(year) if isinstance(year, int) else None
    ) or indicator_sets()[-1]
    household_columns = BMN_HOUSEHOLD_COLUMNS + _indicator_columns(indicator_set, "household")
    problems = [p for row in rows for p in row.problems]
    for row in rows[1:]:
        for column in household_columns:
            if row.values.get(column, "") != first.values.get(column, ""):
                problems.append(
                    FieldError(
                        field=column,
                        message=f"line {row.line} has {row.values.get(column, '')!r} but line {first.line} has "
                        f"{first.values.get(column, '')!r}; household columns repeat on every member row",
                    )
                )
    if skipped:
        problems.append(FieldError(field="members", message=f"more than {MAX_MEMBERS} member rows"))
    household = _present(first.values, BMN_HOUSEHOLD_COLUMNS)
    household["indicators"] = _indicators(first.values, indicator_set, "household")
    household["members"] = [
        {
            **_present(row.values, BMN_MEMBER_COLUMNS),
            "indicators": _indicators(row.values, indicator_set, "person"),
        }
        for row in rows
    ]
    payload = b"\n".join([header, *(row.raw for row in rows)])
    return RawRecord(
        index, first.line, payload, len(payload), decoded=household, problems=tuple(problems)
    )


def _indicator_columns(indicator_set: IndicatorSet, unit: str) -> tuple[str, ...]:
    return tuple(f"ind{i.number}" for i in indicator_set.indicators if i.unit == unit)


def _indicators(values: dict[str, str], indicator_set: IndicatorSet, unit: str) -> dict[str, str]:
    return {
        column.removeprefix("ind"): values[column].strip()
        for column in _indicator_columns(indicator_set, unit)
        if values.get(column, "").strip()
    }
