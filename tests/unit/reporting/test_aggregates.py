"""The AreaAggregate event carries every figure: rebuilt counters answer every mask and card
filter as the stored counters do."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

from hypothesis import given, settings

from services.contracts.events import AreaAggregate
from services.reporting.aggregates import area_aggregate, counters_of_aggregate
from services.reporting.contributions import CARD_FILTERS, Ledger, figures
from tests.unit.reporting.recount import Status
from tests.unit.reporting.test_contributions import AREAS, MASKS, YEARS, streams

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=50, deadline=None)
@given(streams())
def test_an_aggregate_answers_every_mask_and_card_filter(stream: list[Status]) -> None:
    ledger = Ledger()
    for status in stream:
        ledger.apply(status)
    for year, area in product(YEARS, AREAS):
        counters = ledger.counters_of(year, area)
        event = area_aggregate(year, area, counters, NOW)
        # What goes over Kafka is JSON: read it back as a consumer of the topic would.
        read = AreaAggregate.model_validate_json(event.model_dump_json())
        assert read == event
        rebuilt = counters_of_aggregate(read)
        for mask, card in product(MASKS, CARD_FILTERS):
            expected = figures(counters, mask, card).model_copy(
                update={"deceased": 0, "unplaced": 0}
            )
            assert figures(rebuilt, mask, card) == expected, (year, area, mask, card)
        assert all(b.deprivation_set != "00000" for b in event.bins)


def test_an_empty_area() -> None:
    event = area_aggregate(2561, "49", {}, NOW)
    assert (event.level, event.persons_surveyed, event.bins) == ("province", 0, [])
    assert counters_of_aggregate(event) == {}
