"""Roles, areas and citizen-ID display (services/logbook/scope.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.logbook.scope import User, like_patterns, narrowed, user_areas_problem
from tests.synthetic import VILLAGES, citizen_id

NATIONAL = User("n", "n", "national", ("TH",))
PROVINCE = User("p", "p", "province", ("49",))
DISTRICT = User("d", "d", "district", ("4901",))
TEAM = User("t", "t", "team", ("490101", "490203"))


@pytest.mark.parametrize(
    ("role", "areas", "problem"),
    [
        ("national", ["TH"], None),
        ("province", ["49"], None),
        ("district", ["4901"], None),
        ("team", ["490101", "490203"], None),
        ("team", ["490101", "490101"], "given twice"),
        ("province", ["4901"], "not a province code"),
        ("province", ["49", "30"], "exactly one area"),
        ("district", ["9999"], "unknown district"),
        ("team", [], "at least one"),
        ("mayor", ["49"], "unknown role"),
        ("national", ["49"], "not a country code"),
    ],
)
def test_user_areas(role: str, areas: list[str], problem: str | None) -> None:
    found = user_areas_problem(role, areas)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize(
    ("user", "inside", "outside"),
    [
        (NATIONAL, ["TH", "49", "30010101"], []),
        (PROVINCE, ["49", "4901", "49020301"], ["TH", "30", "30010101", "4"]),
        (DISTRICT, ["4901", "49010101"], ["49", "4902", "49020301", "TH"]),
        (TEAM, ["490101", "49010102", "49020301"], ["4901", "490102", "49010201", "49"]),
    ],
)
def test_covers(user: User, inside: list[str], outside: list[str]) -> None:
    assert all(user.covers(code) for code in inside)
    assert not any(user.covers(code) for code in outside)


@given(st.sampled_from(VILLAGES), st.sampled_from([NATIONAL, PROVINCE, DISTRICT, TEAM]))
def test_a_village_is_covered_exactly_when_a_prefix_matches(village: str, user: User) -> None:
    patterns = like_patterns(user.prefixes)
    matches = patterns is None or any(village.startswith(p[:-1]) for p in patterns)
    assert user.covers(village) == matches


def test_narrowed() -> None:
    assert narrowed(PROVINCE, None) == ("49",)
    assert narrowed(PROVINCE, "4901") == ("4901",)
    assert narrowed(PROVINCE, "30") is None
    assert narrowed(NATIONAL, "TH") == ("",)
    assert narrowed(TEAM, "49") is None


def test_citizen_ids_and_permissions_by_role() -> None:
    person = citizen_id(7)
    assert TEAM.show_citizen_id(person) == person
    assert DISTRICT.show_citizen_id(person) == person
    for oversight in (PROVINCE, NATIONAL):
        assert oversight.show_citizen_id(person) == "*********" + person[-4:]
    assert [u.may_write for u in (NATIONAL, PROVINCE, DISTRICT, TEAM)] == [False, True, True, True]
    assert [u.may_read_audit for u in (NATIONAL, PROVINCE, DISTRICT, TEAM)] == [
        True,
        True,
        False,
        False,
    ]
