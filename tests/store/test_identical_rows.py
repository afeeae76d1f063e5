"""Identical purchase rows are stored once and reported as merged, not counted as unchanged."""

from __future__ import annotations

import datetime as dt

from custscore.config import Settings
from custscore.store import open_store
from custscore.store.loading import load_customers, load_events
from tests.cli.test_cli_foundation import cli


def _rows(n_dupes: int) -> list[dict]:
    rows = [{"customer_id": "a", "ts": dt.datetime(2025, 1, d), "amount": 10.0 + d, "quantity": 1} for d in range(1, 6)]
    return rows + [dict(rows[0]) for _ in range(n_dupes)]


def test_identical_rows_in_one_load_are_merged_and_counted(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    load_customers(store, [{"customer_id": "a", "signup_date": dt.datetime(2024, 1, 1)}])
    report = load_events(store, _rows(3), batch_size=2)  # duplicates land in later batches too
    assert (report.inserted, report.merged, report.skipped) == (5, 3, 0)
    assert store["events"].count() == 5
    again = load_events(store, _rows(3))
    assert (again.inserted, again.merged, again.skipped) == (0, 3, 5)


def test_ingest_says_how_many_identical_rows_it_merged(tmp_path):
    (tmp_path / "c.csv").write_text("customer_id,signup_date\na,2024-01-01\n")
    lines = ["customer_id,ts,amount,quantity", "a,2025-01-01,10,1", "a,2025-01-01,10,1", "a,2025-01-01,10,1",
             "a,2025-01-02,12,2"]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    assert cli(tmp_path, "ingest", "customers", str(tmp_path / "c.csv")).exit_code == 0
    result = cli(tmp_path, "ingest", "events", str(tmp_path / "e.csv"))
    assert result.exit_code == 0, result.output
    assert "events: 2 inserted, 0 updated, 0 unchanged or already stored" in result.output
    assert "2 identical rows merged; give an event_id column to keep repeat purchases apart" in result.output
    one = tmp_path / "one.csv"
    one.write_text("\n".join(lines[:1] + ["a,2025-02-01,5,1", "a,2025-02-01,5,1"]) + "\n")
    assert "1 identical row merged;" in cli(tmp_path, "ingest", "events", str(one)).output


def test_no_merge_line_without_identical_rows(tmp_path):
    (tmp_path / "c.csv").write_text("customer_id,signup_date\na,2024-01-01\n")
    (tmp_path / "e.csv").write_text("customer_id,ts,amount\na,2025-01-01,10\na,2025-01-02,10\n")
    cli(tmp_path, "ingest", "customers", str(tmp_path / "c.csv"))
    assert "merged" not in cli(tmp_path, "ingest", "events", str(tmp_path / "e.csv")).output
