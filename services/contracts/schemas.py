"""JSON Schemas of every external record and every event envelope, for agencies and consumers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from services.contracts.events import EVENT_TYPES, Envelope
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration

# What agencies send to ingest, before it is wrapped in an envelope.
EXTERNAL_RECORDS: dict[str, type[BaseModel]] = {
    "bmn-household": BmnHousehold,
    "welfare-registration": WelfareRegistration,
    "civil-event": CivilEvent,
}


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema: one per external record, one per event type (with its envelope)."""
    schemas = {
        f"record.{name}.schema.json": model.model_json_schema()
        for name, model in EXTERNAL_RECORDS.items()
    }
    for event_type, model in EVENT_TYPES.items():
        schema = Envelope[model].model_json_schema()  # type: ignore[valid-type]
        schema["title"] = event_type
        schemas[f"event.{event_type}.schema.json"] = schema
    return schemas


def write_schemas(folder: Path) -> list[Path]:
    """Writes every schema into `folder` (replacing stale ones) and returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.schema.json"):
        stale.unlink()
    written = []
    for name, schema in sorted(all_schemas().items()):
        path = folder / name
        path.write_bytes(
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        written.append(path)
    return written
