"""From a raw record to the message ingest publishes: an envelope on the source's topic, or a
rejection on ingest.rejected.v1 that keeps the record as sent. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.contracts.events import RejectedRecord, envelope_json, text_or_base64
from services.contracts.records import FieldError, InvalidRecordError, parse_record
from services.contracts.topics import INGEST_REJECTED
from services.ingest.framing import RECORD, RawRecord
from services.ingest.sources import Source, message_key

Channel = Literal["http", "kafka"]
# Below the broker's and producer's default 1 MiB message limit, with room for headers.
MAX_REJECTION_MESSAGE_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Message:
    """A Kafka message ready to send."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused record: where it was and why."""

    index: int | None
    line: int | None
    errors: tuple[FieldError, ...]


def _explain_encoding(raw: RawRecord, errors: list[FieldError]) -> list[FieldError]:
    """JSON parsers report bad UTF-8 as invalid JSON; say plainly that it is the encoding."""
    if raw.decoded is not None or not any(e.field == RECORD for e in errors):
        return errors
    try:
        raw.payload.decode("utf-8")
    except UnicodeDecodeError as error:
        return [
            FieldError(
                field=RECORD, message=f"not valid UTF-8: {error.reason} at byte {error.start}"
            )
        ]
    return errors


def validate(
    source: Source, raw: RawRecord, origin: str, received_at: datetime
) -> Message | Rejection:
    """The envelope for a valid record, keyed for its topic; or why it is refused."""
    if raw.problems:
        return Rejection(raw.index, raw.line, raw.problems)
    try:
        record = parse_record(source.model, raw.decoded if raw.decoded is not None else raw.payload)
    except InvalidRecordError as invalid:
        return Rejection(raw.index, raw.line, tuple(_explain_encoding(raw, invalid.errors)))
    key = message_key(record)
    event = envelope_json(source.event_type, origin, record, subject=key, time=received_at)
    return Message(source.topic.name, key.encode(), event)


def rejection_message(
    source: Source,
    *,
    agency: str,
    channel: Channel,
    request_id: str | None,
    index: int | None,
    line: int | None,
    payload: bytes,
    payload_bytes: int,
    errors: tuple[FieldError, ...] | list[FieldError],
    received_at: datetime,
) -> Message:
    """The ingest.rejected.v1 message for a refused record or body, keyed by agency."""
    # Kafka refuses messages over 1 MiB, and escaping can make JSON text several times larger than
    # its bytes: keep a shorter start of the payload until the message fits.
    kept = payload
    while True:
        text, encoding = text_or_base64(kept)
        data = RejectedRecord(
            agency=agency,
            source=source.name,
            channel=channel,
            request_id=request_id,
            index=index,
            line=line,
            payload=text,
            payload_encoding=encoding,
            payload_bytes=payload_bytes,
            truncated=payload_bytes > len(kept),
            errors=list(errors),
            received_at=received_at,
        )
        value = envelope_json(
            INGEST_REJECTED.require_event_type(),
            f"/ingest/{agency}",
            data,
            subject=agency,
            time=received_at,
        )
        if len(value) <= MAX_REJECTION_MESSAGE_BYTES:
            return Message(INGEST_REJECTED.name, agency.encode(), value)
        kept = kept[: len(kept) * MAX_REJECTION_MESSAGE_BYTES // len(value) * 9 // 10]


def record_rejection_message(
    source: Source,
    raw: RawRecord,
    rejection: Rejection,
    *,
    agency: str,
    channel: Channel,
    request_id: str | None,
    received_at: datetime,
) -> Message:
    return rejection_message(
        source,
        agency=agency,
        channel=channel,
        request_id=request_id,
        index=rejection.index,
        line=rejection.line,
        payload=raw.payload,
        payload_bytes=raw.payload_bytes,
        errors=rejection.errors,
        received_at=received_at,
    )
