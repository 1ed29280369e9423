from hypothesis import given
from hypothesis import strategies as st

from services.contracts.citizen_id import (
    check_digit,
    citizen_id_problem,
    mask_citizen_id,
    with_check_digit,
)

twelve_digits = st.text("0123456789", min_size=12, max_size=12)


def test_known_check_digit() -> None:
    # 1-1037-00123-45-?: weights 13..2 give a sum of 168; 168 % 11 = 3; (11 - 3) % 10 = 8.
    assert check_digit("110370012345") == 8
    assert citizen_id_problem("1103700123458") is None


def test_ids_starting_with_zero_are_valid() -> None:
    cid = with_check_digit("012345678901")
    assert cid.startswith("0")
    assert citizen_id_problem(cid) is None


@given(twelve_digits)
def test_completed_ids_are_valid(first_twelve: str) -> None:
    assert citizen_id_problem(with_check_digit(first_twelve)) is None


@given(twelve_digits, st.integers(1, 9))
def test_any_other_check_digit_is_refused(first_twelve: str, shift: int) -> None:
    cid = with_check_digit(first_twelve)
    wrong = cid[:12] + str((int(cid[12]) + shift) % 10)
    problem = citizen_id_problem(wrong)
    assert problem is not None
    assert f"expected {cid[12]}" in problem


def test_shape_errors() -> None:
    assert citizen_id_problem("123") == "must be exactly 13 digits"
    assert citizen_id_problem("12345678901a3") == "must be exactly 13 digits"
    assert citizen_id_problem("๑๒๓๔๕๖๗๘๙๐๑๒๓") == "must be exactly 13 digits"


@given(st.text(min_size=0, max_size=20))
def test_mask_keeps_length_and_hides_all_but_four(value: str) -> None:
    masked = mask_citizen_id(value)
    assert len(masked) == len(value)
    assert masked[: max(0, len(value) - 4)] == "*" * max(0, len(value) - 4)
    if len(value) > 4:
        assert masked[-4:] == value[-4:]
    else:
        assert set(masked) <= {"*"}
