"""The dashboard in headless Chromium (Debian's `chromium`, driven by playwright), served by
`python -m services.reporting` with a broker of the test's own: it opens, drills down from the
country to a village, toggles a dimension, shows a live update after a status is produced to the
broker, and saves screenshots under .local/test-artifacts/."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from services.reporting.settings import ReportingSettings
from tests.service.brokers import DisposableBroker
from tests.service.reporting.conftest import produce, random_stream
from tests.service.reporting.test_reporting_api import start_reporting, stop_reporting
from tests.service.reporting.test_reporting_stream import _moved_to_mukdahan, _settle
from tests.unit.reporting.recount import Recount, Status, final_states

pytestmark = pytest.mark.stack

REPO = Path(__file__).parents[3]
ARTIFACTS = REPO / ".local" / "test-artifacts"
VILLAGE = "49010101"
DRILL_DOWN = ("49", "4901", "490101", VILLAGE)


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    stream: list[Status]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing (.ci/run installs it)")
        pytest.skip("no chromium (apt-get install chromium)")
    # The map comes from npm (package-lock.json); `make test` installs it too.
    subprocess.run(["make", "--no-print-directory", "assets"], cwd=REPO, check=True)
    return found


@pytest.fixture
def served(broker: DisposableBroker, fresh_database: str, tmp_path: Path) -> Iterator[Served]:
    """Reporting with a synthetic population applied and published."""
    log = tmp_path / "reporting.log"
    process, url = start_reporting(broker.bootstrap, fresh_database, log, "tpmap-dashboard-test")
    try:
        _, stream = random_stream(31, persons=120, households=20)
        produce(broker.bootstrap, stream)
        _settle(broker.bootstrap, fresh_database)
        yield Served(url, stream)
    finally:
        stop_reporting(process, log)


@pytest.fixture
def page(chromium: str, served: Served) -> Iterator[Page]:
    """A page in headless Chromium; set up after (and closed before) the fixtures that run
    asyncio themselves, since playwright's sync API holds this thread's event loop."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        opened = browser.new_page(viewport={"width": 1400, "height": 1600}, locale="th-TH")
        opened.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield opened
        finally:
            browser.close()
    assert not errors, errors


def _target_persons(states: list[Status], mask: str) -> str:
    """The village's target persons as the page writes them (Thai digits grouping: 1,234)."""
    return f"{Recount(mask, 'all').figures(states, 2561, VILLAGE).target_persons:,}"


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_drill_down_toggle_and_live_update(
    page: Page, served: Served, broker: DisposableBroker
) -> None:
    url, stream = served.url, served.stream
    states = final_states(stream)

    page.goto(f"{url}/dashboard/#year=2561")
    expect(page.locator("#freshness")).to_have_attribute("data-state", "live")
    expect(page.locator("#map path[data-code]")).to_have_count(77)
    no_data = "rgb(233, 236, 239)"  # provinces with nothing counted stay grey
    expect(page.locator("#map path[data-code='49']")).not_to_have_css("fill", no_data)
    expect(page.locator("#map path[data-code='10']")).to_have_css("fill", no_data)
    _shot(page, "dashboard-country.png")

    for code in DRILL_DOWN:  # country -> province -> district -> subdistrict -> village
        page.locator(f"#children-table tbody tr[data-code='{code}']").click()
        expect(page.locator("#area-title")).to_contain_text(f"({code})")
    expect(page.locator("#crumbs a")).to_have_count(5)
    expect(page.locator("#children")).to_be_hidden()
    headline = page.locator("#figures dd[data-figure='target_persons']")
    expect(headline).to_have_text(_target_persons(states, "11111"))

    # The health dimension off: every figure is recomputed under mask 01111.
    page.locator("#mask input[value='health']").uncheck()
    expect(page).to_have_url(
        f"{url}/dashboard/#year=2561&area={VILLAGE}&mask=01111&card=all&lang=th"
    )
    expect(headline).to_have_text(_target_persons(states, "01111"))
    expect(page.locator("#dimension-table tr[data-dimension='health'] td.num")).to_have_text("0")

    # A status produced to the broker: the open page shows it without a reload.
    moved = _moved_to_mukdahan(states, 3)
    states = final_states(stream + moved)
    assert _target_persons(states, "01111") != headline.inner_text()
    started = time.monotonic()
    produce(broker.bootstrap, moved)
    expect(headline).to_have_text(_target_persons(states, "01111"), timeout=10_000)
    print(f"status produced -> figure on the page: {time.monotonic() - started:.3f} s")
    expect(page.locator("#freshness")).to_contain_text("อัปเดตล่าสุด")

    page.locator("[data-lang='en']").click()
    expect(page.locator("h1")).to_contain_text("Target poor")
    # Side by side with TPMAP's 2561 files, read in place from ../shared/data (never copied into
    # the repository), so only where a checkout has them: villages were published under 11111.
    if ReportingSettings().tpmap_2561_dir.is_dir():
        expect(page.locator("#compare-note")).to_contain_text("TPMAP published no figures")
        page.locator("#mask input[value='health']").check()
        tpmap = page.locator("#compare-table tr[data-compare='target_persons'] td:nth-child(2)")
        expect(tpmap).to_have_text("6")  # village/61_49_village_11111.csv, 4901010101
    else:
        print(
            "TPMAP 2561 comparison not checked: no ../shared/data/tpmap-2561 next to the repository"
        )
    _shot(page, "dashboard-village.png")
