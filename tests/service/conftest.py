"""Fixtures shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.brokers import DisposableBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DisposableBroker]:
    """A fresh broker with every registry topic, stopped after the test."""
    broker = DisposableBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()
