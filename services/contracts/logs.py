"""Structured JSON logs for every service, one object a line, with citizen IDs masked (PDPA).

Masking happens in the formatter, on the rendered message and every extra field, so a citizen ID
that reaches a log call by accident is still never written in full.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from services.contracts.citizen_id import mask_citizen_id

_CITIZEN_ID = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")
# Attributes every LogRecord has; anything else was passed in `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def mask_text(text: str) -> str:
    """Masks every 13-digit run (a possible citizen ID) in free text."""
    return _CITIZEN_ID.sub(lambda match: mask_citizen_id(match.group()), text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES:
                entry[key] = _masked(value)
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def json_handler(service: str) -> logging.Handler:
    """A handler writing JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    """Sends every logger's records to stderr as JSON lines."""
    root = logging.getLogger()
    root.handlers[:] = [json_handler(service)]
    root.setLevel(level.upper())
