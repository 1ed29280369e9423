"""The pure part of `GET /v1/stream`: the newest aggregate of every area read from
`reporting.area-aggregates.v1`, how far the topic has been read, which areas a client follows,
event IDs, and the Server-Sent Events wire format. No I/O.

Event IDs are positions in the topic: the next offset of each partition, `12.0.7.3.0.9`. The
topic is compacted and every message carries an area's whole aggregate, so a client that has
seen position `P` has the newest state of every area it follows whose newest message lies below
`P`; resuming from `P` means sending each followed area whose newest message is at or after `P`
in its partition, once, with its newest state. Compaction never removes the newest message of
a key, so this holds however long the client was away.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.contracts.areas import COUNTRY_CODE, area, level_of
from services.contracts.events import AreaAggregate, Envelope
from services.reporting.aggregates import counters_of_aggregate
from services.reporting.contributions import CardFilter, figures

CHILDREN_SUFFIX = "*"
# Counted by the API from PostgreSQL but not carried by the AreaAggregate contract.
NOT_ON_THE_TOPIC = frozenset({"deceased", "unplaced"})

AreaKey = tuple[int, str]
"""(survey year, area code): the topic's key `year:area`."""


@dataclass(frozen=True, slots=True)
class Position:
    """How far the topic has been read: the next offset of each partition."""

    next_offsets: tuple[int, ...]

    @classmethod
    def start(cls, partitions: int) -> Position:
        return cls((0,) * partitions)

    def encode(self) -> str:
        return ".".join(str(offset) for offset in self.next_offsets)

    @classmethod
    def decode(cls, text: str | None, partitions: int) -> Position | None:
        """The position an event ID names; None when there is none or it is not one of ours
        (the client then gets a whole snapshot)."""
        if not text:
            return None
        parts = text.strip().split(".")
        if len(parts) != partitions or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        return cls(tuple(int(p) for p in parts))

    def covers(self, partition: int, offset: int) -> bool:
        """The message at `offset` of `partition` lies below this position."""
        return offset < self.next_offsets[partition]

    def reaches(self, other: Position) -> bool:
        return all(a >= b for a, b in zip(self.next_offsets, other.next_offsets, strict=True))

    def after(self, partition: int, offset: int) -> Position:
        offsets = list(self.next_offsets)
        offsets[partition] = max(offsets[partition], offset + 1)
        return Position(tuple(offsets))


def parent_of(code: str) -> str | None:
    """The parent area of a well-formed area code (None for the country)."""
    if code == COUNTRY_CODE:
        return None
    return COUNTRY_CODE if len(code) == 2 else code[:-2]


@dataclass(frozen=True, slots=True)
class AreaSelection:
    """The areas a client follows in one survey year: the areas listed, and every child of an
    area listed with a trailing `*` (`TH*`: every province; `4901*`: its subdistricts)."""

    survey_year: int
    areas: frozenset[str]
    children_of: frozenset[str]

    @classmethod
    def parse(cls, survey_year: int, text: str) -> AreaSelection:
        """From `TH,TH*,49,49*`; ValueError naming the first item that is not an area code (or
        a village with `*`: villages have no children)."""
        areas: set[str] = set()
        children_of: set[str] = set()
        for item in (part.strip() for part in text.split(",")):
            code = item.removesuffix(CHILDREN_SUFFIX)
            level = level_of(code)
            wants_children = code != item
            if level is None or (wants_children and level == "village"):
                msg = f"not an area code: {item!r} (TH, PP, PPDD, PPDDSS, PPDDSSVV; a trailing * for its child areas)"
                raise ValueError(msg)
            (children_of if wants_children else areas).add(code)
        return cls(survey_year, frozenset(areas), frozenset(children_of))

    def wants(self, key: AreaKey) -> bool:
        survey_year, code = key
        if survey_year != self.survey_year:
            return False
        return code in self.areas or parent_of(code) in self.children_of


@dataclass(frozen=True, slots=True)
class AreaMessage:
    """The newest message of one area and year: where it is on the topic, and its value."""

    key: AreaKey
    partition: int
    offset: int
    value: bytes


def parse_key(key: bytes | None) -> AreaKey | None:
    """`2561:49` -> (2561, '49'); None for anything else."""
    if key is None:
        return None
    year, _, code = key.decode("utf-8", "replace").partition(":")
    if not (year.isascii() and year.isdigit()) or level_of(code) is None:
        return None
    return int(year), code


class FeedState:
    """The newest message of each area on the topic and the position read so far."""

    def __init__(self, partitions: int) -> None:
        self.position = Position.start(partitions)
        self._newest: dict[AreaKey, AreaMessage] = {}
        self._children: dict[AreaKey, set[str]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._newest)

    def apply(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> AreaMessage | None:
        """Takes one message read from the topic; the area's new newest message, or None for a
        message that is not an area's aggregate (an unreadable key, a tombstone)."""
        self.position = self.position.after(partition, offset)
        parsed = parse_key(key)
        if parsed is None:
            return None
        if value is None:
            self._forget(parsed)
            return None
        message = AreaMessage(parsed, partition, offset, value)
        self._newest[parsed] = message
        parent = parent_of(parsed[1])
        if parent is not None:
            self._children[(parsed[0], parent)].add(parsed[1])
        return message

    def _forget(self, key: AreaKey) -> None:
        self._newest.pop(key, None)
        parent = parent_of(key[1])
        if parent is not None:
            self._children[(key[0], parent)].discard(key[1])

    def selected(self, selection: AreaSelection, since: Position | None) -> list[AreaMessage]:
        """The newest message of every area of `selection` that a client at `since` has not
        seen (every one when `since` is None), parents before children."""
        year = selection.survey_year
        codes = set(selection.areas)
        for parent in selection.children_of:
            codes |= self._children.get((year, parent), set())
        found = (self._newest.get((year, code)) for code in codes)
        return sorted(
            (
                m
                for m in found
                if m is not None and (since is None or not since.covers(m.partition, m.offset))
            ),
            key=lambda m: (len(m.key[1]) if m.key[1] != COUNTRY_CODE else 0, m.key[1]),
        )


@dataclass(slots=True)
class Pending:
    """What a subscriber has not been sent yet: the newest message of each area, with the
    position right after it, in the order read (an area read again moves to the end), so that
    each event's ID covers every change sent before it."""

    _messages: dict[AreaKey, tuple[AreaMessage, Position]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self._messages)

    def add(self, message: AreaMessage, position: Position) -> None:
        self._messages.pop(message.key, None)
        self._messages[message.key] = (message, position)

    def take(self) -> list[tuple[AreaMessage, Position]]:
        taken = list(self._messages.values())
        self._messages.clear()
        return taken


def area_payload(message: AreaMessage, mask: str, card: CardFilter) -> dict[str, Any]:
    """An area's event data: what `GET /v1/areas/{code}` answers for the same year, mask and
    card filter, computed from the aggregate (without the figures the topic does not carry)."""
    aggregate = Envelope[AreaAggregate].model_validate_json(message.value).data
    found = area(aggregate.area_code)
    shown = figures(counters_of_aggregate(aggregate), mask, card)
    return {
        "survey_year": aggregate.survey_year,
        "area_code": aggregate.area_code,
        "level": aggregate.level,
        "name_th": found.name_th if found else None,
        "name_en": found.name_en if found else None,
        "as_of": aggregate.as_of,
        **shown.model_dump(mode="json", exclude=set(NOT_ON_THE_TOPIC)),
    }


def sse(event: str, data: object, event_id: str | None = None) -> bytes:
    """One Server-Sent Event; `data` as one line of JSON."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def sse_retry(milliseconds: int) -> bytes:
    """Tells the browser how soon to reconnect after the connection drops."""
    return f"retry: {milliseconds}\n\n".encode()


SSE_KEEPALIVE = b": keep-alive\n\n"
