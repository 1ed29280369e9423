"""The demo's files: one per source in an ingest format (NDJSON or CSV, the layouts of
`docs/examples/`) and `manifest.json`, written as districts are generated and read back a
record (BMN CSV: a household) at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import orjson

from services.ingest.sources import BMN, Source
from tools.demo.population import DemoHousehold
from tools.demo.records import SOURCES, csv_rows, records_of

Format = Literal["ndjson", "csv"]
FORMATS: tuple[Format, ...] = ("ndjson", "csv")
MANIFEST = "manifest.json"
CONTENT_TYPES: dict[Format, str] = {"ndjson": "application/x-ndjson", "csv": "text/csv"}


def source_file(folder: Path, source: Source, file_format: Format) -> Path:
    return folder / f"{source.name}.{file_format}"


def find_source_file(folder: Path, source: Source) -> tuple[Path, Format] | None:
    """The folder's file of a source, in whichever format it was written."""
    for file_format in FORMATS:
        path = source_file(folder, source, file_format)
        if path.is_file():
            return path, file_format
    return None


class RecordFiles:
    """Writes every source's records of the households given, as they come."""

    def __init__(self, folder: Path, file_format: Format) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.format = file_format
        self.counts: dict[str, int] = dict.fromkeys((s.name for s in SOURCES), 0)
        self._files: dict[str, IO[bytes]] = {}
        self._csv: dict[str, tuple[io.TextIOWrapper, Any]] = {}
        for source in SOURCES:
            binary = source_file(folder, source, file_format).open("wb")
            self._files[source.name] = binary
            if file_format == "csv":
                text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
                writer = csv.writer(text, lineterminator="\n")
                writer.writerow(source.csv_columns)
                self._csv[source.name] = (text, writer)

    def write(self, household: DemoHousehold) -> None:
        for source in SOURCES:
            for record in records_of(source, household):
                self.counts[source.name] += 1
                if self.format == "ndjson":
                    self._files[source.name].write(orjson.dumps(record) + b"\n")
                else:
                    self._csv[source.name][1].writerows(csv_rows(source, record))

    def close(self) -> None:
        for text, _ in self._csv.values():
            text.flush()
            text.detach()
        for binary in self._files.values():
            binary.close()

    def __enter__(self) -> RecordFiles:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        msg = f"no {MANIFEST} in {folder}: not a folder written by `python -m tools.demo generate`"
        raise FileNotFoundError(msg)
    manifest: dict[str, Any] = orjson.loads(path.read_bytes())
    return manifest


def record_chunks(path: Path, file_format: Format, source: Source) -> Iterator[bytes]:
    """The file's records as they are in the file: an NDJSON line, or (CSV, after the header)
    a row, for BMN all the consecutive rows of one household; the CSV header is not yielded
    (`csv_header` gives it)."""
    with path.open("rb") as lines:
        if file_format == "csv":
            next(lines, None)
        if file_format == "ndjson" or source is not BMN:
            yield from (line for line in lines if line.strip())
            return
        household: list[bytes] = []
        key = b""
        for line in lines:
            # Household IDs (the first column) hold no comma or quote (the contract's pattern).
            line_key = line.split(b",", 1)[0]
            if household and line_key != key:
                yield b"".join(household)
                household = []
            key = line_key
            household.append(line)
        if household:
            yield b"".join(household)


def csv_header(path: Path) -> bytes:
    with path.open("rb") as lines:
        return next(lines, b"")


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                record: dict[str, Any] = orjson.loads(line)
                yield record
