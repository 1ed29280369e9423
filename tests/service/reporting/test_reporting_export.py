"""TPMAP's CSV export served by `python -m services.reporting` (started as deploy/local starts
it) after synthetic statuses went through the real broker into PostgreSQL: every exported
number equals the recount. How the lines are laid out is checked against TPMAP's own files in
tests/unit/reporting/test_export.py; here the numbers in them are."""

from __future__ import annotations

import csv
import time
import uuid
from pathlib import Path

import httpx
import pytest

from services.contracts.areas import parent_chain
from services.reporting.contributions import figures
from services.reporting.export import header_line, parse_file_name, row_line
from tests.service.brokers import DisposableBroker
from tests.service.reporting.conftest import AREAS, caught_up, produce, random_stream
from tests.service.reporting.test_reporting_api import start_reporting, stop_reporting
from tests.unit.reporting.recount import Recount, Status, final_states

pytestmark = pytest.mark.stack

EXPORT = "/v1/export/tpmap"
# A mask file and a common file at two levels, and other levels in the other year.
FILES = (
    (2561, "61_49_amphur_01000.csv"),
    (2561, "61_49_amphur_common.csv"),
    (2561, "61_49_village_11111.csv"),
    (2561, "61_49_village_common.csv"),
    (2562, "62_country_common.csv"),
    (2562, "62_province_10100.csv"),
    (2562, "62_49_tambol_00011.csv"),
)


def _expected_csv(states: list[Status], year: int, name: str) -> str:
    """The file written from the recount: every area of the file's level under its parent with
    anything counted, in code order."""
    export = parse_file_name(year, name)
    everything = Recount("11111", "all")
    depth = len(parent_chain(export.parent)) + export.tpmap_level.generations
    codes = [
        code
        for code in AREAS
        if len(parent_chain(code)) == depth
        and export.parent in parent_chain(code)
        and everything.figures(states, year, code) != figures({})
    ]
    mask = Recount(export.figures_mask, "all")
    return header_line(export) + "".join(
        row_line(export, code, mask.figures(states, year, code)) for code in codes
    )


def _check_errors(url: str) -> None:
    for path, reason in (
        ("2563/63_country_common.csv", "survey year 2563 has no counted figures"),
        ("2561/62_country_common.csv", "start with 61_, not 62_"),
        ("2561/61_99_amphur_common.csv", "unknown province code 99"),
        ("2561/61_49_amphur.csv", "not a TPMAP export file name"),
    ):
        response = httpx.get(f"{url}{EXPORT}/{path}", timeout=10)
        assert response.status_code == 404, path
        assert reason in response.json()["detail"], path


def test_the_export_answers_the_recount(
    broker: DisposableBroker, fresh_database: str, tmp_path: Path
) -> None:
    _, stream = random_stream(17)
    produce(broker.bootstrap, stream)
    states = final_states(stream)
    log = tmp_path / "reporting.log"
    group = f"tpmap-reporting-export-{uuid.uuid4().hex[:8]}"
    process, url = start_reporting(broker.bootstrap, fresh_database, log, group)
    try:
        deadline = time.monotonic() + 60
        while not caught_up(broker.bootstrap, fresh_database):
            assert time.monotonic() < deadline, "the consumer did not reach the end of the topics"
            time.sleep(0.3)
        for year, name in FILES:
            response = httpx.get(f"{url}{EXPORT}/{year}/{name}", timeout=10)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "text/csv; charset=utf-8"
            assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
            assert response.text == _expected_csv(states, year, name), name
            assert len(response.text.splitlines()) > 1, f"{name} has no rows: nothing compared"
        villages = csv.DictReader(
            httpx.get(f"{url}{EXPORT}/2561/61_49_village_common.csv", timeout=10).text.splitlines()
        )
        assert [v["village_ID"] for v in villages] == ["49010101", "49010102", "49020301"]
        # A known province with nothing counted: the header alone.
        empty = httpx.get(f"{url}{EXPORT}/2561/61_11_tambol_common.csv", timeout=10)
        assert empty.text == header_line(parse_file_name(2561, "61_11_tambol_common.csv"))
        _check_errors(url)
    finally:
        stop_reporting(process, log)
