"""The dashboard's pure parts: TPMAP's published files read under the platform's names, the
names catalogue, and the map's province codes against the gazetteer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.contracts.areas import provinces
from services.reporting.dashboard import STATIC, catalogue
from services.reporting.settings import ReportingSettings
from services.reporting.tpmap_published import (
    published_figures,
    published_paths,
    read_published,
    rows_of,
)


def test_which_files_hold_an_area() -> None:
    assert published_paths("TH", "10000") == (
        Path("country/61_country_common.csv"),
        Path("country/61_country_10000.csv"),
    )
    assert published_paths("4901", "01100") == (
        Path("amphur/61_49_amphur_common.csv"),
        Path("amphur/61_49_amphur_01100.csv"),
    )
    assert published_paths("49010101", "11111") == (
        Path("village/61_49_village_common.csv"),
        Path("village/61_49_village_11111.csv"),
    )
    assert published_paths("490101", "10000") is None  # subdistricts: 11111 only
    assert published_paths("4", "11111") is None


def test_a_village_is_the_sum_of_its_sub_units() -> None:
    rows = [
        {"village_ID": "4901010101", "household.CNT": "10", "HOUSEMEMBER_CNT": "40"},
        {"village_ID": "4901010102", "household.CNT": "5", "HOUSEMEMBER_CNT": "10"},
        {"village_ID": "4901010201", "household.CNT": "7", "HOUSEMEMBER_CNT": "9"},
        {"village_ID": "4901010101", "poor.JPT.MOFval.CNT": "2", "JPT.MOFval.pov.rate": "5"},
        {"village_ID": "4901010102", "poor.JPT.MOFval.CNT": "3", "JPT.MOFval.pov.rate": "30"},
    ]
    mine = rows_of(rows, "49010101")
    assert len(mine) == 4
    figures = published_figures(mine)
    assert figures["households_surveyed"] == 15
    assert figures["target_persons"] == 5
    assert figures["target_rate"] == pytest.approx(10.0)  # recomputed: 100 × 5 / 50


def test_columns_take_the_platform_names() -> None:
    row = {
        "province_ID": "49",
        "poor.JPT.MOFval.accessibility": "3",
        "poor.JPT.MOFval.health": "4",
        "poor.JPT.MOFval.ind7.CNT": "2",
        "indicator7.ALL": "90",
        "indicator7.CNT": "12",
        "JPT.MOFval.pov.rate": "1.25",
        "happiness": "8.1",
    }
    figures = published_figures(rows_of([row, {**row, "province_ID": "30"}], "49"))
    assert figures == {
        "target_by_dimension": {"access": 3, "health": 4},
        "target_by_indicator": {"7": 2},
        "indicator_applicable": {"7": 90},
        "indicator_failed": {"7": 12},
        "target_rate": 1.25,
    }


def test_tpmap_headline_of_2561() -> None:
    """The figures shared/data/README.md states, read where the setting points."""
    folder = ReportingSettings().tpmap_2561_dir
    if not folder.is_dir():
        pytest.skip(f"TPMAP's 2561 files are not at {folder}")
    country = read_published(folder, "TH", "11111")
    assert country is not None
    assert (country["households_surveyed"], country["persons_surveyed"]) == (12935866, 36647817)
    assert (country["poor_persons"], country["target_persons"]) == (4405684, 1032987)
    health_only = read_published(folder, "TH", "10000")
    assert health_only is not None
    assert health_only["target_persons"] == country["target_by_dimension"]["health"] == 217081
    assert read_published(folder, "10", "11111") is None  # Bangkok was not surveyed


def test_the_catalogue_names_every_dimension_and_indicator() -> None:
    names = catalogue(2561)
    assert [d["name"] for d in names["dimensions"]] == [
        "health",
        "living",
        "education",
        "income",
        "access",
    ]
    assert [i["number"] for i in names["indicators"]] == list(range(1, 32))
    assert all(i["label_th"] and i["label_en"] for i in names["indicators"])


def test_the_map_names_every_province_once() -> None:
    mapping = dict(
        re.findall(r"\b([a-z]{3}): \"(\d{2})\"", (STATIC / "provinces.js").read_text("utf-8"))
    )
    assert len(mapping) == 77
    assert sorted(mapping.values()) == sorted(p.code for p in provinces())
