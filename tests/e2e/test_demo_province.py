"""End to end: the calibrated demo population of province 49 (Mukdahan) at full scale, loaded
through ingest's HTTP API by `make run`'s command, flows through the matcher to reporting on a
stack of its own; reporting's TPMAP export for the province (`61_province_*.csv`, row 49) and its
districts (`61_49_amphur_*.csv`) equals TPMAP's published 2561 files in every figure the
calibration makes exact, under all 31 masks, and every per-indicator figure within 1 %."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local import stack
from deploy.local.connection_files import read_credentials
from deploy.local.layout import CACHE_ENV, HOME_ENV, StackLayout
from deploy.local.ports import any_free_port
from services.reporting.tpmap_published import read_published
from tools.demo.__main__ import main as demo
from tools.demo.calibration import MASKS
from tools.demo.figures import Difference, differences
from tools.demo.published import DEFAULT_DATA_DIR, district_codes, tpmap_dir

pytestmark = pytest.mark.stack

PROVINCE = "49"
SERVICE_PORTS = ("INGEST_PORT", "LOGBOOK_PORT", "REPORTING_PORT")


@pytest.fixture(scope="module")
def reporting_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A whole stack of its own (Kafka, PostgreSQL, the four services on free ports) with the
    demo province loaded by `python -m tools.demo run`, as `make run` does."""
    home = tmp_path_factory.mktemp("e2e-stack")
    env = {
        **os.environ,
        HOME_ENV: str(home),
        CACHE_ENV: str(StackLayout.from_env(os.environ).cache),  # the jars already fetched
        **{name: str(any_free_port()) for name in SERVICE_PORTS},
    }
    layout = StackLayout.from_env(env)
    try:
        stack.up(layout, env, with_services=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(HOME_ENV, str(home))
            status = demo(["run", "--provinces", PROVINCE, "--timeout", "1800"])
        assert status == 0, f"tools.demo run exited with {status}; see its output above"
        yield str(read_credentials(layout.credentials_file)["reporting"]["url"])
    finally:
        stack.down(layout, env, stack.EVERYTHING)


@pytest.fixture(scope="module")
def exported(reporting_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reporting's export files of the province and its districts, laid out as TPMAP's are."""
    folder = tmp_path_factory.mktemp("export") / "tpmap-2561"
    names = [
        *(("province", f"61_province_{kind}.csv") for kind in ("common", *MASKS)),
        *(("amphur", f"61_{PROVINCE}_amphur_{kind}.csv") for kind in ("common", *MASKS)),
    ]
    with httpx.Client(base_url=reporting_url, timeout=120) as client:
        for level, name in names:
            response = client.get(f"/v1/export/tpmap/2561/{name}")
            assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
            (folder / level).mkdir(parents=True, exist_ok=True)
            (folder / level / name).write_bytes(response.content)
    return folder


def _differences(exported: Path) -> list[Difference]:
    published = tpmap_dir(DEFAULT_DATA_DIR)
    found: list[Difference] = []
    for area in (PROVINCE, *district_codes(DEFAULT_DATA_DIR, PROVINCE)):
        for mask in MASKS:
            ours = read_published(exported, area, mask)
            theirs = read_published(published, area, mask)
            assert ours is not None, f"the export has no row for {area} under mask {mask}"
            assert theirs is not None, f"TPMAP published no row for {area} under mask {mask}"
            found += differences(area, mask, ours, theirs)
    return found


def test_the_export_equals_tpmaps_published_figures(exported: Path) -> None:
    found = _differences(exported)
    exact = [d for d in found if d.exact]
    assert not exact, f"{len(exact)} exact figures differ, e.g. " + "; ".join(
        f"{d.area} {d.mask} {d.figure}: ours {d.ours}, TPMAP {d.published}" for d in exact[:10]
    )
    far = [d for d in found if not d.acceptable]
    assert not far, f"{len(far)} per-indicator figures differ by more than 1 %, e.g. " + "; ".join(
        f"{d.area} {d.mask} {d.figure}: ours {d.ours}, TPMAP {d.published}" for d in far[:10]
    )


def test_the_comparison_sees_a_changed_figure(exported: Path, tmp_path: Path) -> None:
    """The check above can fail: one household fewer in a district's export is found."""
    changed = tmp_path / "tpmap-2561"
    for level in ("province", "amphur"):
        (changed / level).mkdir(parents=True)
        for source in (exported / level).iterdir():
            (changed / level / source.name).write_bytes(source.read_bytes())
    district = district_codes(DEFAULT_DATA_DIR, PROVINCE)[0]
    common = changed / "amphur" / f"61_{PROVINCE}_amphur_common.csv"
    lines = common.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        cells = line.split(",")
        if cells[0].strip('"') == district:
            cells[1] = str(int(cells[1]) - 1)  # household.CNT
            lines[n] = ",".join(cells)
    common.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert any(
        d.area == district and d.figure == "households_surveyed" for d in _differences(changed)
    )
