import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.indicators import (
    DIMENSIONS,
    Dimension,
    dimensions_to_mask,
    indicator_set_for,
    mask_to_dimensions,
    supported_years,
)

# TPMAP-RULES.md section 2: the 17 TPMAP indicators and their dimensions.
TPMAP_DIMENSIONS = {
    Dimension.HEALTH: (1, 4, 5, 7),
    Dimension.LIVING: (8, 9, 10, 11),
    Dimension.EDUCATION: (15, 16, 17, 19),
    Dimension.INCOME: (20, 21, 22),
    Dimension.ACCESS: (27, 28),
}


def test_catalogue_has_31_indicators_with_thai_and_english_labels() -> None:
    indicator_set = indicator_set_for(2561)
    assert indicator_set is not None
    assert [i.number for i in indicator_set.indicators] == list(range(1, 32))
    assert all(i.label_th and i.label_en for i in indicator_set.indicators)


def test_dimension_mapping_matches_the_rules() -> None:
    indicator_set = indicator_set_for(2561)
    assert indicator_set is not None
    for dimension, numbers in TPMAP_DIMENSIONS.items():
        assert tuple(i.number for i in indicator_set.by_dimension(dimension)) == numbers
    assert sum(1 for i in indicator_set.indicators if i.dimension is not None) == 17


@pytest.mark.parametrize(
    ("number", "age", "applies"),
    [
        (1, 0, True),
        (1, 1, False),
        (15, 2, False),
        (15, 3, True),
        (15, 5, True),
        (15, 6, False),
        (21, 59, False),
        (21, 60, True),
        (21, 130, True),
        (17, 40, True),
        (6, 34, False),
    ],
)
def test_age_ranges(number: int, age: int, applies: bool) -> None:
    indicator_set = indicator_set_for(2561)
    assert indicator_set is not None
    indicator = indicator_set.get(number)
    assert indicator is not None
    assert indicator.applies_to_age(age) is applies


def test_survey_years_and_income_threshold() -> None:
    assert list(supported_years()) == [2560, 2561, 2562, 2563, 2564, 2565]
    for year in supported_years():
        indicator_set = indicator_set_for(year)
        assert indicator_set is not None
        assert indicator_set.income_threshold_baht == 38_000
    assert indicator_set_for(2559) is None
    assert indicator_set_for(2566) is None
    assert indicator_set_for(2018) is None


@given(st.sets(st.sampled_from(DIMENSIONS)))
def test_mask_round_trip(dimensions: set[Dimension]) -> None:
    mask = dimensions_to_mask(dimensions)
    assert len(mask) == 5
    assert mask_to_dimensions(mask) == frozenset(dimensions)
    assert int(mask, 2) == sum(d.bit for d in dimensions)


def test_mask_order_is_health_living_education_income_access() -> None:
    assert mask_to_dimensions("10000") == {Dimension.HEALTH}
    assert mask_to_dimensions("00001") == {Dimension.ACCESS}
    assert dimensions_to_mask({Dimension.INCOME}) == "00010"
    assert Dimension.ACCESS.label_th == "การเข้าถึงบริการรัฐ"


@pytest.mark.parametrize("mask", ["1111", "111111", "11a11", ""])
def test_bad_masks(mask: str) -> None:
    with pytest.raises(ValueError, match="mask must be 5 characters"):
        mask_to_dimensions(mask)
