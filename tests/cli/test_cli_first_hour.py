"""The first hour of a new user (issue 12): what query, models and leaderboard print."""

from __future__ import annotations

import datetime as dt

import pytest

from custscore.config import Settings
from custscore.store import open_store
from custscore.store.loading import load_customers
from custscore.store.query import close_fields
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


@pytest.fixture
def narrow(monkeypatch):
    """A 120-column terminal."""
    from custscore.cli import common

    monkeypatch.setattr(common.console, "width", 120)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    home = tmp_path_factory.mktemp("first_hour")
    assert cli(home, "simulate", "-n", "150", "--seed", "3").exit_code == 0
    assert cli(home, "mirror").exit_code == 0
    return home


def _pipeline(home, name):
    from custscore.analytics.pipelines import run_pipeline

    with open_store(Settings.build(home=home, environ={})) as store:
        return run_pipeline(store, name)


def assert_nothing_cut(output, width=120):
    """No cell or header cut with an ellipsis and every table line within the terminal (notes are soft-wrapped:
    one line to copy)."""
    assert "…" not in output
    table = [line for line in output.splitlines() if line[:1] in set("┏┃┡│└")]
    assert table and max(len(line) for line in table) <= width


def test_stats_shows_twenty_rows_then_how_many_there_are_and_how_to_export(simulated, narrow):
    total = len(_pipeline(simulated, "rfm"))
    result = cli(simulated, "stats", "rfm")
    assert result.exit_code == 0, result.output
    assert sum(ln.startswith("│ C") for ln in result.output.splitlines()) == 20
    assert result.output.splitlines()[-1] == (f"showing 20 of {total:,} rows; all of them: custscore stats rfm "
                                              "--limit 0, or export: custscore stats rfm --csv > rfm.csv")
    assert_nothing_cut(result.output)
    assert len(cli(simulated, "stats", "rfm", "--csv").output.splitlines()) == total + 1  # exports get every row
    assert len(cli(simulated, "stats", "rfm", "--csv", "--limit", "5").output.splitlines()) == 6


def test_stats_sort_by_a_column_and_unknown_columns_name_close_matches(simulated):
    result = cli(simulated, "stats", "rfm", "--sort", "monetary:-1", "--csv")
    assert result.exit_code == 0, result.output
    monetary = [float(line.split(",")[3]) for line in result.output.splitlines()[1:]]
    assert monetary == sorted(monetary, reverse=True)
    assert_one_red_line(cli(simulated, "stats", "rfm", "--sort", "monetry"),
                        "--sort column 'monetry' is not in rfm; did you mean monetary?")


def test_cohort_retention_is_a_cohort_by_month_grid(simulated, narrow):
    tidy = _pipeline(simulated, "cohort_retention")
    csv = cli(simulated, "stats", "cohort_retention", "--csv").output.splitlines()
    assert csv[0].startswith("cohort,cohort_size,0,1,2,")
    assert len(csv) - 1 == tidy["cohort"].nunique()
    newest = tidy[tidy["cohort"] == tidy["cohort"].max()].set_index("months_since")["retention"]
    assert csv[1].split(",")[2] == repr(float(newest[0]))  # newest cohort first, its month 0, full precision
    table = cli(simulated, "stats", "cohort_retention")
    assert table.exit_code == 0, table.output
    assert f"{newest[0]:.0%}" in table.output.splitlines()[4]
    assert "more columns with --wide: " in table.output
    assert_nothing_cut(table.output)


def test_csv_floats_have_one_style_at_full_precision(simulated):
    lines = cli(simulated, "stats", "churn_by_group", "--csv").output.splitlines()
    rates = [line.split(",")[-1] for line in lines[1:]]
    assert rates and all(r == repr(float(r)) for r in rates)


def test_sql_lists_tables_and_a_tables_columns(simulated, narrow):
    tables = cli(simulated, "sql", "--tables")
    assert tables.exit_code == 0, tables.output
    customers = next(ln for ln in tables.output.splitlines() if ln.startswith("│ customers "))
    assert customers.split("│")[2].strip() == "150" and customers.split("│")[4].strip() == "customer_id"
    assert "_mirror_state" not in tables.output and "stats_rfm" in tables.output
    schema = cli(simulated, "sql", "--schema", "events")
    assert schema.exit_code == 0, schema.output
    assert [ln.split("│")[1].strip() for ln in schema.output.splitlines() if ln.startswith("│ ")][:3] == [
        "event_id", "customer_id", "ts"]
    assert_one_red_line(cli(simulated, "sql", "--schema", "event"),
                        "--schema 'event': the mirror has no such table; did you mean events?")


def test_sql_on_id_says_the_mirrors_id_column_is_customer_id(simulated):
    assert_one_red_line(cli(simulated, "sql", "SELECT _id FROM customers"),
                        "Error: SQL error: no such column: _id; the mirror's id column is customer_id "
                        "(events: event_id, predictions: prediction_id), not _id")
    assert cli(simulated, "sql", "SELECT customer_id FROM customers LIMIT 1").exit_code == 0


def test_query_in_120_columns_cuts_no_header_and_says_how_to_see_the_rest(mixed, narrow):
    result = cli(mixed, "query", '{"region": "north"}', "--sort", "income:-1")
    assert result.exit_code == 0, result.output
    assert_nothing_cut(result.output)
    header = next(ln for ln in result.output.splitlines() if ln.startswith("┃"))
    assert [h.strip() for h in header.strip("┃").split("┃")][:2] == ["_id", "score.risk"]
    assert "region" in header and "income" in header  # the filter's and the sort's fields come first
    hidden = next(ln for ln in result.output.splitlines() if "more columns" in ln)
    assert hidden.startswith("  ") and " more columns with --wide or --fields: " in hidden


def test_try_next_lines_are_copyable_commands_with_a_real_id(monkeypatch):
    from custscore.cli import demo

    monkeypatch.setattr(demo.shutil, "which", lambda name: "/usr/bin/custscore")
    lines = demo.try_next_lines("custscore --home /tmp/x", "C0000042")
    assert lines[0] == ("  custscore --home /tmp/x query '{\"score.risk\": \"high\"}' "
                        "--sort score.churn_probability:-1 --limit 10")
    assert "  custscore --home /tmp/x explain C0000042" in lines
    assert not any("<" in line for line in lines)
    assert lines[-2:] == ["and in a second terminal, while score --watch runs:",
                          "  custscore --home /tmp/x simulate --customers 0 --stream --rate 20 --duration 60"]
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    monkeypatch.setattr(demo.sys, "executable", "/opt/venv/bin/python")
    hint = demo.try_next_lines("custscore", None)
    assert hint[:2] == ["custscore is not on PATH; activate its virtual environment first (or run "
                        "/opt/venv/bin/custscore):", "  source /opt/venv/bin/activate"]


def test_every_leaderboard_kind_starts_with_the_model_and_marks_the_winner():
    import pandas as pd

    from custscore.cli.leaderboards import leaderboard_table

    board = pd.DataFrame([{"model": "als", "val_ndcg@10": 0.146, "test_ndcg@10": 0.15, "fit_s": 1.2},
                          {"model": "user-knn", "val_ndcg@10": 0.189, "test_ndcg@10": 0.198, "fit_s": 0.4}])
    table, hidden = leaderboard_table(board, "recommend", "ranking", "user-knn", width=120)
    assert [c.header for c in table.columns] == ["model", "val NDCG@10", "test NDCG@10", "fit s"] and not hidden
    assert list(table.columns[0].cells) == ["als", "user-knn (winner)"]


def test_demo_shows_one_bar_per_step_with_counts_and_closes_them_before_its_next_line(capsys):
    from custscore.cli.demo import RichDemoUI

    ui = RichDemoUI()
    for done in (0, 300, 600):
        ui.progress("simulate customers", done, 600)
    ui.progress("churn: linear", 1, 3)
    ui.message("600 customers")
    captured = capsys.readouterr()
    bars = [line.split("━")[0].strip() + " " + line.split()[-3] for line in captured.err.splitlines() if "━" in line]
    assert bars == ["simulate customers 600/600", "churn 3/3"]  # the task done, its family no longer named
    assert captured.out.strip() == "600 customers"


def _column(output, header):
    lines = output.splitlines()
    heads = [h.strip() for h in next(ln for ln in lines if ln.startswith("┃")).strip("┃").split("┃")]
    return [ln.strip("│").split("│")[heads.index(header)].strip() for ln in lines if ln.startswith("│ ")]


def test_a_column_shows_every_number_with_the_same_decimals(simulated, narrow):
    result = cli(simulated, "stats", "churn_by_group")
    assert result.exit_code == 0, result.output
    rates = _column(result.output, "churn_rate")
    assert len(rates) >= 3 and {len(r.split(".")[1]) for r in rates} == {3}, rates  # 0.140, never 0.14 under 0.174
    revenue = _column(cli(simulated, "stats", "top_categories").output, "revenue")
    assert len({len(r.split(".")[1]) for r in revenue}) == 1, revenue


def test_query_counts_its_rows_in_words(mixed):
    one = cli(mixed, "query", '{"_id": "C3"}')
    assert one.exit_code == 0 and one.output.splitlines()[-1] == "1 row"
    assert cli(mixed, "query", '{"region": "north"}').output.splitlines()[-1] == "6 rows"


def test_the_worker_panel_shows_one_model_per_line(capsys):
    from types import SimpleNamespace

    from custscore.cli.common import console
    from custscore.cli.scoring import stats_panel

    stats = SimpleNamespace(
        worker="w1", scored=3, replayed=0, echoes=0, throughput=1.0, latency_p50_ms=None, latency_p99_ms=None,
        backlog=0, caught_up=True, stale=0, swept=0, dead_letters=0, batches=1, switches=[], max_age=None,
        versions={"segment": "20261202-152506-080437", "churn": "20261202-152112-b4c0da"})
    console.print(stats_panel(stats))
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("│ models"))
    models = [ln.split("│")[2].strip() for ln in lines[start:] if ln.startswith("│")]
    assert models == ["churn 20261202-152112-b4c0da", "segment 20261202-152506-080437"]
