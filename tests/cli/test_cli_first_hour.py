"""The first hour of a new user (issue 12): what query, models and leaderboard print."""

from __future__ import annotations

import datetime as dt

import pytest

from custscore.config import Settings
from custscore.store.query import close_fields
from custscore.store import open_store
from custscore.store.loading import load_customers
from tests.cli.test_cli_foundation import assert_one_red_line, cli


@pytest.fixture
def mixed(tmp_path):
    """Scored and unscored customers side by side: the state the demo leaves."""
    store = open_store(Settings.build(home=tmp_path, environ={}))
    load_customers(store, [{"customer_id": f"C{i}", "signup_date": dt.datetime(2024, 1, 1), "region": "north",
                            "income": 1000.0 * i} for i in range(6)])
    for i in (1, 3):
        store["customers"].update_one({"_id": f"C{i}"}, {"$set": {"score": {
            "churn_probability": i / 10, "risk": "low", "segment_name": "champions",
            "scored_at": dt.datetime(2026, 1, 2, 3, 4)}}})
    store.close()
    return tmp_path


def test_query_mixing_scored_and_unscored_customers_shows_dashes_not_a_traceback(mixed):
    result = cli(mixed, "query", '{"region": "north", "income": {"$gt": 500}}', "--sort", "income:-1", "--limit", "5",
                 "--wide")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "NaTType" not in result.output
    assert "2026-01-02 03:04" in result.output  # never NaT
    rows = [ln for ln in result.output.splitlines() if ln.startswith("│ C")]
    assert [r.split("│")[1].strip() for r in rows] == ["C5", "C4", "C3", "C2", "C1"]
    unscored = next(r for r in rows if r.startswith("│ C4"))
    assert "NaT" not in unscored and "nan" not in unscored and "-" in unscored


def test_sort_on_an_unknown_field_is_an_error_naming_close_matches(mixed):
    result = cli(mixed, "query", "--sort", "churn:-1")
    assert_one_red_line(result, "--sort field 'churn' is on no customer; did you mean score.churn_probability?")
    typo = cli(mixed, "query", "--sort", "incme")
    assert_one_red_line(typo, "--sort field 'incme' is on no customer; did you mean income?")
    assert cli(mixed, "query", "--sort", "score.churn_probability:-1").exit_code == 0


def test_close_fields_prefers_fields_named_like_the_typo():
    fields = ["_id", "income", "score", "score.churn_probability", "score.risk", "purchase_history.orders"]
    assert close_fields("churn", fields) == ["score.churn_probability"]
    assert close_fields("order", fields) == ["purchase_history.orders"]
    assert close_fields("zzz", fields) == []
