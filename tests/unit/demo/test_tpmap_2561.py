"""The demo population of Mukdahan (49) and Samut Songkhram (75, the smallest province), at full
scale, against TPMAP's published 2561 figures: every record goes through the contract's door
(`parse_record`, as ingest validates it), the matcher's rules classify every person, and the
figures of the provinces and of each of their districts are compared under all 31 masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from services.contracts.areas import village_code_problem
from services.contracts.citizen_id import citizen_id_problem
from services.contracts.events import WelfareStatus
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration, parse_record
from services.reporting.tpmap_published import read_published
from tools.demo.calibration import MASKS, scaled
from tools.demo.citizen_ids import is_synthetic_citizen_id
from tools.demo.figures import Difference, Tally, all_differences, figures, tally
from tools.demo.population import DemoHousehold, generate_district
from tools.demo.published import (
    TPMAP_FOLDER,
    district_codes,
    read_district_target,
    read_gazetteer,
    read_village_units,
    usable_village_code,
)
from tools.demo.records import bmn_record, civil_records, welfare_records
from tools.demo.villages import village_plan

PROVINCES = ("49", "75")
SEED = 2561


@dataclass(frozen=True, slots=True)
class Generated:
    households: list[DemoHousehold]
    tallies: dict[str, Tally]
    areas: list[str]
    village_codes_in_tpmap: frozenset[str]


def _generate(data_dir: Path, province: str) -> Generated:
    gazetteer = read_gazetteer(data_dir)
    units = read_village_units(data_dir, province)
    districts = district_codes(data_dir, province)
    households = []
    for district in districts:
        villages, _ = village_plan(district, units, gazetteer, usable_village_code)
        target = read_district_target(data_dir, district)
        households += generate_district(target, villages, SEED).households
    welfare: dict[str, WelfareStatus] = {}
    deaths = {}
    records = []
    for household in households:
        records.append(parse_record(BmnHousehold, bmn_record(household)))
        for raw in welfare_records(household):
            registration = parse_record(WelfareRegistration, raw)
            welfare[registration.citizen_id] = registration.status
        for raw in civil_records(household):
            event = parse_record(CivilEvent, raw)
            deaths[event.citizen_id] = event.date
    return Generated(
        households,
        tally(records, welfare, deaths),
        [province, *districts],
        frozenset(u.code for u in units),
    )


@pytest.fixture(scope="module", params=PROVINCES)
def generated(request: pytest.FixtureRequest, data_dir: Path) -> Generated:
    return _generate(data_dir, request.param)


def _differences(generated: Generated, data_dir: Path) -> list[Difference]:
    folder = data_dir / TPMAP_FOLDER
    return all_differences(
        generated.tallies, generated.areas, lambda code, mask: read_published(folder, code, mask)
    )


def test_exact_figures_equal_tpmap_at_province_and_district_under_every_mask(
    generated: Generated, data_dir: Path
) -> None:
    """Households and persons surveyed, welfare registered and verified; under each of the
    31 masks poor households, poor persons, poor registered, target persons and target persons
    per dimension."""
    exact = [d for d in _differences(generated, data_dir) if d.exact]
    assert exact == []


def test_per_indicator_figures_are_within_one_percent(generated: Generated, data_dir: Path) -> None:
    """Applicable and failing persons per indicator, and target persons per indicator under
    every mask."""
    close = [d for d in _differences(generated, data_dir) if not d.exact]
    assert [d for d in close if not d.acceptable] == []


def test_every_area_and_mask_is_compared(generated: Generated, data_dir: Path) -> None:
    folder = data_dir / TPMAP_FOLDER
    province = generated.areas[0]
    ours = figures(generated.tallies[province], "11111")
    theirs = read_published(folder, province, "11111")
    assert theirs is not None
    assert ours["target_persons"] == theirs["target_persons"] > 0
    assert len(generated.areas) > 1
    assert len(MASKS) == 31


def test_citizen_ids_are_valid_synthetic_and_unique(generated: Generated) -> None:
    ids = [m.citizen_id for h in generated.households for m in h.members]
    assert all(citizen_id_problem(cid) is None for cid in ids)
    assert all(is_synthetic_citizen_id(cid) for cid in ids)
    assert len(set(ids)) == len(ids)
    household_ids = [h.household_id for h in generated.households]
    assert len(set(household_ids)) == len(household_ids)


def test_village_codes_are_real(generated: Generated, data_dir: Path) -> None:
    """Every village is one of the gazetteer's or, where the gazetteer has none in a
    district, one of TPMAP's own village units; and the contract accepts it."""
    gazetteer = read_gazetteer(data_dir).names
    codes = {h.village_code for h in generated.households}
    assert all(village_code_problem(code) is None for code in codes)
    assert codes <= gazetteer.keys() | generated.village_codes_in_tpmap
    named = [h for h in generated.households if h.village_code in gazetteer]
    assert all(gazetteer[h.village_code] in h.house_no for h in named)


def test_card_holders_are_adults(generated: Generated) -> None:
    holders = [
        m
        for h in generated.households
        for m in h.members
        if m.welfare in ("registered", "verified")
    ]
    assert holders
    assert all(m.age >= 18 for m in holders)


def test_generation_is_deterministic(data_dir: Path) -> None:
    gazetteer = read_gazetteer(data_dir)
    villages, _ = village_plan(
        "7502", read_village_units(data_dir, "75"), gazetteer, usable_village_code
    )
    target = scaled(read_district_target(data_dir, "7502"), 0.2)
    first = generate_district(target, villages, SEED)
    again = generate_district(target, villages, SEED)
    other = generate_district(target, villages, SEED + 1)
    assert first == again
    assert first.households != other.households
