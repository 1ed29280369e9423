"""Example requests for each source and format: shown in the OpenAPI document and written to
docs/examples/ (`python -m services.ingest examples docs/examples`). Citizen IDs here start with
9, which is not a category of Thai citizen ID (0-8), so they can never be a real person's."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson

from services.contracts.citizen_id import with_check_digit
from services.ingest.sources import BMN, CIVIL, SOURCES, WELFARE, Source

_ID_A = with_check_digit("949010000011")
_ID_B = with_check_digit("949010000022")
_ID_C = with_check_digit("949010000033")

_RECORDS: dict[str, list[dict[str, Any]]] = {
    BMN.name: [
        {
            "household_id": "4901010101-0045",
            "survey_year": 2561,
            "village_code": "49010101",
            "house_no": "45 หมู่ 1 บ้านคำตุนาง",
            "surveyed_on": "2018-03-15",
            "income_per_capita_baht": 31_500,
            "happiness_score": 7.5,
            "indicators": {"4": "pass", "5": "pass", "8": "fail", "9": "pass", "22": "fail"},
            "members": [
                {
                    "citizen_id": _ID_A,
                    "age": 64,
                    "sex": "F",
                    "chronic_patient": True,
                    "indicators": {"21": "fail", "27": "pass"},
                },
                {
                    "citizen_id": _ID_B,
                    "age": 9,
                    "sex": "M",
                    "indicators": {"16": "pass", "7": "pass"},
                },
            ],
        }
    ],
    WELFARE.name: [
        {
            "citizen_id": _ID_A,
            "round": 2560,
            "status": "verified",
            "updated_at": "2017-12-01T09:00:00+07:00",
            "village_code": "49010101",
        },
        {
            "citizen_id": _ID_C,
            "round": 2560,
            "status": "registered",
            "updated_at": "2017-11-20T14:30:00",
        },
    ],
    CIVIL.name: [{"citizen_id": _ID_C, "event": "death", "date": "2018-06-01"}],
}


def records(source: Source) -> list[dict[str, Any]]:
    return _RECORDS[source.name]


def as_json(source: Source) -> bytes:
    return orjson.dumps(records(source), option=orjson.OPT_INDENT_2) + b"\n"


def as_ndjson(source: Source) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records(source))


def _csv_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def as_csv(source: Source) -> bytes:
    """The CSV layout: for BMN one row per member with the household columns repeated and
    indicators as ind1..ind31 (household-unit ones repeated too)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(source.csv_columns)
    for record in records(source):
        rows = (
            [
                {**record, **m, "indicators": {**record["indicators"], **m["indicators"]}}
                for m in record["members"]
            ]
            if source is BMN
            else [record]
        )
        for row in rows:
            indicators = row.get("indicators", {})
            writer.writerow(
                _csv_text(
                    indicators.get(c.removeprefix("ind")) if c.startswith("ind") else row.get(c)
                )
                for c in source.csv_columns
            )
    return out.getvalue().encode()


def write_examples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in SOURCES.values():
        for suffix, render in (("json", as_json), ("ndjson", as_ndjson), ("csv", as_csv)):
            path = folder / f"{source.name}.{suffix}"
            path.write_bytes(render(source))
            written.append(path)
    return written


REF_TEMPLATE = "#/components/schemas/{model}"


def component_schemas() -> dict[str, Any]:
    """The record models as OpenAPI components, for the request bodies to refer to."""
    components: dict[str, Any] = {}
    for source in SOURCES.values():
        schema = source.model.model_json_schema(ref_template=REF_TEMPLATE)
        components.update(schema.pop("$defs", {}))
        components[source.model.__name__] = schema
    return components


def request_body(source: Source) -> dict[str, Any]:
    """The OpenAPI requestBody of a source's endpoint: the three formats with their examples."""
    schema = {"$ref": REF_TEMPLATE.format(model=source.model.__name__)}
    return {
        "required": True,
        "description": (
            f"{source.name} records as a JSON array, NDJSON (one record per line, streamed) or CSV "
            "(streamed; layout in docs/examples/). ระเบียนแบบ JSON array, NDJSON หรือ CSV"
        ),
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": schema},
                "example": records(source),
            },
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": as_ndjson(source).decode(),
            },
            "text/csv": {"schema": {"type": "string"}, "example": as_csv(source).decode()},
        },
    }
