"""The reference data the demo is calibrated on lies next to the checkout (`../shared/data`);
a clone elsewhere may not have it, and the tests that need it are skipped then."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.demo.published import DEFAULT_DATA_DIR, GAZETTEER_FILE, TPMAP_FOLDER


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if (
        not (DEFAULT_DATA_DIR / TPMAP_FOLDER).is_dir()
        or not (DEFAULT_DATA_DIR / GAZETTEER_FILE).is_file()
    ):
        pytest.skip(
            f"TPMAP's 2561 export and the village gazetteer are not at {DEFAULT_DATA_DIR} "
            "(shared/data next to this checkout); the demo's calibration is checked only there"
        )
    return DEFAULT_DATA_DIR
