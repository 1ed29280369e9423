"""The pure calibration: exact sets from the masks, verified blocks, consistency, scaling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.contracts.records import HOUSE_NO_MAX_LENGTH
from tools.demo.calibration import (
    ALL_SETS,
    POOR_SETS,
    SET_COUNT,
    Cell,
    DistrictTarget,
    consistent,
    exact_set_counts,
    scaled,
)
from tools.demo.population import _splits, _verified_blocks, house_no

exact_counts = st.lists(st.integers(0, 1000), min_size=31, max_size=31).map(lambda c: (0, *c))


@given(exact_counts)
def test_exact_set_counts_invert_the_mask_figures(counts: tuple[int, ...]) -> None:
    def under_mask(mask: int) -> int:
        return sum(counts[s] for s in POOR_SETS if s & mask)

    assert exact_set_counts(under_mask) == counts


def _target(cells: list[Cell]) -> DistrictTarget:
    empty = tuple(0 for _ in range(SET_COUNT))
    numbers = range(1, 32)
    return DistrictTarget(
        code="4901",
        cells=tuple(cells),
        target_failing=dict.fromkeys(numbers, empty),
        applicable=dict.fromkeys(numbers, 0),
        failed=dict.fromkeys(numbers, 0),
        elderly=0,
        disabled=0,
        chronic=0,
    )


def test_more_target_persons_than_registered_is_bent_into_shape_and_noted() -> None:
    cells = [Cell(0, 0, 0, 0)] * SET_COUNT
    cells[0] = Cell(100, 300, 90, 40)
    cells[0b10010] = Cell(3, 17, 4, 5)  # TPMAP's district 4204 has such a set
    fixed = consistent(_target(cells))
    assert fixed.cells[0b10010] == Cell(3, 17, 5, 5)
    assert fixed.cells[0] == Cell(100, 300, 89, 40)  # the district's registered stay
    assert len(fixed.notes) == 1
    assert "10010" in fixed.notes[0]


def test_scaled_keeps_household_sizes_and_the_total() -> None:
    cells = [Cell(0, 0, 0, 0)] * SET_COUNT
    cells[0] = Cell(10_000, 25_000, 8_000, 6_000)
    cells[ALL_SETS] = Cell(300, 1_200, 600, 500)
    target = scaled(_target(cells), 0.1)
    assert target.households == 1_030
    assert target.cells[ALL_SETS] == Cell(30, 120, 60, 50)
    assert target.cells[0] == Cell(1_000, 2_500, 800, 600)


@given(st.integers(1, 60), st.integers(1, 40))
def test_verified_blocks_can_make_every_per_indicator_figure(
    verified: int, households: int
) -> None:
    if verified > 2**households - 1:  # fewer households than any complete split needs
        return
    blocks = _verified_blocks(verified, households, sums=set(range(1, verified)))
    assert sum(blocks) == verified
    assert len(blocks) <= households
    assert all(b >= 1 for b in blocks)
    reachable = 1
    for block in blocks:
        reachable |= reachable << block
    assert all(reachable >> t & 1 for t in range(verified + 1))


def test_verified_blocks_split_as_a_dimension_splits_the_verified() -> None:
    # Two households of two verified persons: one fails indicator 20, the other 21.
    blocks = _verified_blocks(4, 3, sums={2}, partitions=[(2, 2)])
    assert sorted(blocks) in ([2, 2], [1, 1, 2])


def test_splits_are_every_split_once() -> None:
    assert sorted(_splits(6, 3, 6)) == sorted([(2, 2, 2), (3, 2, 1), (4, 1, 1)])


def test_the_address_line_keeps_the_village_name_only_when_the_survey_record_takes_it() -> None:
    # Some gazetteer names are long: province 30's run had 374 households ingest refused.
    short, long = "หนองบัว", "หนองตะไก้พัฒนาสามัคคีเจริญสุขใหม่ใต้"
    assert house_no(12, 3, short) == "12 หมู่ 3 หนองบัว"
    assert house_no(12, 3, None) == "12 หมู่ 3"
    assert house_no(1234, 13, long) == "1234 หมู่ 13"
    assert all(
        len(house_no(h, 20, long[:n])) <= HOUSE_NO_MAX_LENGTH for h in (1, 99999) for n in range(40)
    )
