"""The quarterly progress report (services/logbook/report.py) and the agency catalogue."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.indicators import DIMENSIONS, Dimension
from services.logbook.agencies import agencies
from services.logbook.report import (
    INTERVENTION_COLUMNS,
    PROGRESS_COLUMNS,
    CaseFacts,
    InterventionFacts,
    Quarter,
    intervention_rows,
    progress_rows,
    quarter_of,
    render_csv,
)
from services.logbook.tokens import new_token, secret_matches, split_token


def test_thai_fiscal_quarters() -> None:
    q1 = Quarter(2562, 1)
    assert (q1.start, q1.end) == (date(2018, 10, 1), date(2019, 1, 1))
    assert (Quarter(2562, 2).start, Quarter(2562, 4).end) == (date(2019, 1, 1), date(2019, 10, 1))
    assert q1.label == "2562-Q1"
    with pytest.raises(ValueError, match="quarter must be"):
        Quarter(2562, 5)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_a_date_lies_in_its_quarter(day: date) -> None:
    quarter = quarter_of(day)
    assert quarter.start <= day < quarter.end
    assert quarter.end - quarter.start < timedelta(days=93)


def _case(village: str, **overrides: object) -> CaseFacts:
    values: dict[str, object] = {
        "village_code": village,
        "reason": "target",
        "status": "open",
        "deprived": (Dimension.INCOME, Dimension.LIVING),
        "visits": 0,
        "visits_in_quarter": 0,
    }
    values.update(overrides)
    return CaseFacts(**values)  # type: ignore[arg-type]


CASES = [
    _case("49010101"),
    _case(
        "49010101",
        visits=2,
        visits_in_quarter=1,
        interventions=(
            InterventionFacts(Dimension.INCOME, "DOAE", Decimal("4500.50"), "done", True),
        ),
        resolutions={Dimension.INCOME: "helped", Dimension.LIVING: "self_resolved"},
    ),
    _case("49010102", reason="outreach", status="no_longer_target", visits=1),
    _case("49020301"),
]


def test_progress_rows_count_each_area_and_its_children() -> None:
    rows = progress_rows(Quarter(2562, 1), ["4901"], CASES)
    table = {r[1]: dict(zip(PROGRESS_COLUMNS, r, strict=True)) for r in rows}
    district = table["4901"]
    assert district["name_th"] == "เมืองมุกดาหาร"
    assert (district["cases"], district["target_cases"], district["outreach_cases"]) == (
        "3",
        "2",
        "1",
    )
    assert (district["visited"], district["with_intervention"], district["helped"]) == (
        "2",
        "1",
        "1",
    )
    assert (district["not_started"], district["no_longer_target"]) == ("2", "1")
    assert district["budget_baht"] == district["budget_income_baht"] == "4500.50"
    assert table["490101"]["cases"] == "3"
    assert "49020301" not in table  # another district
    assert "490102" in table
    assert table["490102"]["cases"] == "0"


def test_intervention_rows_and_csv() -> None:
    rows = intervention_rows(Quarter(2562, 1), ["49"], CASES)
    assert rows == [["2562-Q1", "49", "province", "มุกดาหาร", "income", "DOAE", "1", "1", "4500.50"]]
    text = render_csv(INTERVENTION_COLUMNS, rows)
    parsed = list(csv.reader(text.splitlines()))
    assert parsed[0] == list(INTERVENTION_COLUMNS)
    assert parsed[1][3] == "มุกดาหาร"


def test_agency_catalogue() -> None:
    catalogue = agencies()
    assert len(catalogue) >= 20
    assert {"CDD", "DSDW", "MOPH", "OTHER"} <= set(catalogue)
    for agency in catalogue.values():
        assert agency.name_th
        assert agency.name_en
        assert any("\u0e00" <= c <= "\u0e7f" for c in agency.name_th)
        assert set(agency.dimensions) <= set(DIMENSIONS)


def test_tokens() -> None:
    token = new_token()
    parts = split_token(token.token)
    assert parts is not None
    assert parts[0] == token.token_id
    assert secret_matches(parts[1], token.secret_sha256)
    assert not secret_matches(parts[1] + "x", token.secret_sha256)
    assert split_token("tpk_abc_def") is None
    assert split_token("tpl__x") is None
