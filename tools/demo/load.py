"""Loads the demo's files through ingest's HTTP API, as the agencies would: each source with
its agency's key (`.local/credentials.json`, written by `make up`), in bulk requests of a few
thousand records streamed with chunked transfer encoding, each with an Idempotency-Key derived
from its content, so a request resent after a 503 or a lost connection publishes nothing
twice.

The matcher gives the same result in any order; welfare registrations and deaths go first only
because it then does less work: a survey arriving after them finds each member's facts in place
and is matched once, where a registration arriving after the survey re-evaluates its household."""

from __future__ import annotations

import hashlib
import http.client
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from services.ingest.__main__ import DEVELOPMENT_AGENCIES
from services.ingest.sources import BMN, CIVIL, WELFARE, Source
from tools.demo.files import CONTENT_TYPES, Format, csv_header, find_source_file, record_chunks

AGENCY_OF_SOURCE = {
    source: agency for agency, sources in DEVELOPMENT_AGENCIES.items() for source in sources
}
LOAD_ORDER: tuple[Source, ...] = (WELFARE, CIVIL, BMN)
_CHUNK_BYTES = 1 << 20
_ATTEMPTS = 6
_TIMEOUT_SECONDS = 600
_RETRY_STATUSES = frozenset({409, 502, 503, 504})  # 409: the same key is still being answered


class LoadError(RuntimeError):
    """Ingest refused a request for good (not a reason to retry)."""


@dataclass(slots=True)
class SourceResult:
    accepted: int = 0
    rejected: int = 0
    first_errors: list[dict[str, Any]] = field(default_factory=list)


def ingest_access(credentials: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Ingest's URL and the API key of each source's agency, from the credentials file."""
    section = credentials.get("ingest")
    if not isinstance(section, dict) or "keys" not in section:
        msg = "no ingest keys in the credentials file: run `make up` first"
        raise LoadError(msg)
    keys = {s: section["keys"][agency] for s, agency in AGENCY_OF_SOURCE.items()}
    return str(section.get("url", "http://127.0.0.1:8001")), keys


def batches(
    path: Path, file_format: Format, source: Source, records_per_request: int
) -> Iterator[tuple[bytes, list[bytes]]]:
    """The file cut into requests: (the CSV header or nothing, the records of one request)."""
    header = csv_header(path) if file_format == "csv" else b""
    batch: list[bytes] = []
    for chunk in record_chunks(path, file_format, source):
        batch.append(chunk)
        if len(batch) >= records_per_request:
            yield header, batch
            batch = []
    if batch:
        yield header, batch


def _body(header: bytes, records: list[bytes]) -> Iterator[bytes]:
    """The request body in pieces of about a megabyte (sent as chunks as they come)."""
    piece: list[bytes] = [header] if header else []
    size = len(header)
    for record in records:
        piece.append(record if record.endswith(b"\n") else record + b"\n")
        size += len(record)
        if size >= _CHUNK_BYTES:
            yield b"".join(piece)
            piece, size = [], 0
    if piece:
        yield b"".join(piece)


def post(
    url: str, path: str, key: str, *, content_type: str, header: bytes, records: list[bytes]
) -> dict[str, Any]:
    """One streamed request, retried with the same Idempotency-Key while ingest or the
    connection fails for a while; ingest's reply."""
    digest = hashlib.sha256()
    digest.update(path.encode())
    for record in (header, *records):
        digest.update(record)
    idempotency_key = f"tpmap-demo-{digest.hexdigest()[:40]}"
    target = urlsplit(url)
    delay = 1.0
    for attempt in range(1, _ATTEMPTS + 1):
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1", target.port or 80, timeout=_TIMEOUT_SECONDS
        )
        try:
            connection.request(
                "POST",
                path,
                body=_body(header, records),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": content_type,
                    "Idempotency-Key": idempotency_key,
                },
                encode_chunked=True,
            )
            response = connection.getresponse()
            reply = response.read()
            if response.status == 200:
                result: dict[str, Any] = orjson.loads(reply)
                return result
            if response.status not in _RETRY_STATUSES or attempt == _ATTEMPTS:
                msg = f"ingest answered {response.status} to POST {path}: {reply[:500]!r}"
                raise LoadError(msg)
        except (ConnectionError, TimeoutError, http.client.HTTPException):
            if attempt == _ATTEMPTS:
                raise
        finally:
            connection.close()
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
    msg = f"POST {path} failed {_ATTEMPTS} times"  # pragma: no cover - the loop returns or raises
    raise LoadError(msg)


def load(
    folder: Path,
    url: str,
    keys: dict[str, str],
    records_per_request: int,
    report: Callable[[str], None],
) -> dict[str, SourceResult]:
    """Posts every source file of the folder; `report` gets a progress line per request."""
    results: dict[str, SourceResult] = {}
    for source in LOAD_ORDER:
        found = find_source_file(folder, source)
        if found is None:
            report(f"{source.name}: no file in {folder}, skipped")
            continue
        path, file_format = found
        total = sum(1 for _ in record_chunks(path, file_format, source))
        result = results[source.name] = SourceResult()
        started = time.monotonic()
        for header, records in batches(path, file_format, source, records_per_request):
            reply = post(
                url,
                source.path,
                keys[source.name],
                content_type=CONTENT_TYPES[file_format],
                header=header,
                records=records,
            )
            result.accepted += int(reply.get("accepted", 0))
            result.rejected += int(reply.get("rejected_count", 0))
            room = 5 - len(result.first_errors)
            result.first_errors.extend(reply.get("rejected", [])[: max(room, 0)])
            done = result.accepted + result.rejected
            rate = done / max(time.monotonic() - started, 1e-6)
            report(
                f"{source.name}: {done:,} / {total:,} records ({100 * done / max(total, 1):.0f} %), "
                f"{result.rejected:,} rejected, {rate:,.0f} records/s"
            )
    return results
