"""stats, mirror and sql from the command line, on a small simulated store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from custscore.cli import app

runner = CliRunner()


def cli(home, *args):
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False, env={"CUSTSCORE_MONGO_URI": ""})


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("analytics")
    assert cli(path, "simulate", "-n", "400", "--seed", "11", "--end", "2026-06-30").exit_code == 0
    return path


def test_stats_lists_and_runs_pipelines(home):
    listing = cli(home, "stats")
    assert listing.exit_code == 0 and "satisfaction_by_age" in listing.output and "cohort_retention" in listing.output
    table = cli(home, "stats", "satisfaction_by_group", "--by", "channel")
    assert table.exit_code == 0 and "web" in table.output
    rows = [json.loads(line) for line in cli(home, "stats", "top_categories", "--json").output.splitlines()]
    assert len(rows) == 8 and all("revenue" in r for r in rows)


def test_stats_bad_name_is_one_red_line(home):
    result = cli(home, "stats", "nope")
    assert result.exit_code == 1 and result.output.count("Error:") == 1 and "satisfaction_by_age" in result.output


def test_mirror_then_sql_counts_match_status(home):
    first = cli(home, "mirror")
    assert first.exit_code == 0, first.output
    count = cli(home, "sql", "SELECT count(*) AS n FROM customers", "--csv")
    assert count.output.strip().splitlines() == ["n", "400"]
    assert "400" in cli(home, "status").output
    again = cli(home, "mirror", "--no-stats")
    assert again.output.splitlines()[-1].startswith("0 documents copied, in ")
    example = cli(home, "sql", "--example", "satisfaction_by_age_group", "--csv")
    assert example.exit_code == 0 and "avg_satisfaction" in example.output


def stats_rows(output):
    """``{table: copied}`` of the mirror's summary table, for the stats tables."""
    cells = [[c.strip() for c in ln.split("│")[1:-1]] for ln in output.splitlines() if ln.startswith("│ stats_")]
    return {c[0]: c[1] for c in cells}


def test_a_second_mirror_recomputes_only_the_stats_whose_sources_changed(tmp_path):
    assert cli(tmp_path, "simulate", "-n", "120", "--seed", "5", "--end", "2026-06-30").exit_code == 0
    first = cli(tmp_path, "mirror")
    assert first.exit_code == 0, first.output
    assert ", 10 of 10 stats tables recomputed, in " in first.output.splitlines()[-1]

    again = cli(tmp_path, "mirror")  # nothing changed: nothing copied, no pipeline run
    assert again.output.splitlines()[-1].startswith(
        "0 documents copied, 0 of 10 stats tables recomputed (10 kept: what they read did not change), in ")
    assert set(stats_rows(again.output).values()) == {"kept"} and len(stats_rows(again.output)) == 10

    new = '{"_id": "N1", "age": 30, "income": 40000, "signup_date": "2026-06-01", "region": "north"}'
    assert runner.invoke(app, ["--home", str(tmp_path), "insert", "-"], input=new,
                         env={"CUSTSCORE_MONGO_URI": ""}).exit_code == 0
    third = cli(tmp_path, "mirror")
    assert third.output.splitlines()[-1].startswith(
        "1 document copied, 6 of 10 stats tables recomputed (4 kept: what they read did not change), in ")
    kept = {name for name, copied in stats_rows(third.output).items() if copied == "kept"}
    assert kept == {"stats_rfm", "stats_monthly_revenue", "stats_top_categories", "stats_top_products"}
    counted = cli(tmp_path, "sql", "SELECT sum(customers) AS n FROM stats_satisfaction_by_group", "--csv")
    assert counted.output.split() == ["n", "121"]  # the recomputed table counts N1


def test_sql_refuses_writes_and_keeps_the_table(home):
    cli(home, "mirror", "--no-stats")
    refused = cli(home, "sql", "DROP TABLE customers")
    assert refused.exit_code == 1 and "read-only" in refused.output and "Traceback" not in refused.output
    assert cli(home, "sql", "SELECT count(*) AS n FROM customers", "--csv").output.strip().endswith("400")


def test_sql_without_a_mirror_says_what_to_run(tmp_path):
    result = cli(tmp_path, "sql", "SELECT 1")
    assert result.exit_code == 1 and "custscore mirror" in result.output


def test_report_writes_html_and_prints_where(home):
    result = cli(home, "report")
    assert result.exit_code == 0, result.output
    assert "Report written" in result.output and "index.html" in result.output
    reports = list((home / "reports").glob("*/index.html"))
    assert len(reports) == 1 and reports[0].stat().st_size > 10_000
    assert list(reports[0].parent.glob("*.png"))


def test_report_on_an_empty_store_is_one_red_line(tmp_path):
    result = cli(tmp_path, "report")
    assert result.exit_code == 1 and "custscore simulate" in result.output and "Traceback" not in result.output
