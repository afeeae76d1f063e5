"""The commands a user runs first: simulate, ingest, status, and how bad input is reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from custscore.cli import app
from custscore.config import Settings
from custscore.store import open_store

runner = CliRunner()


def cli(home, *args):
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False, env={"CUSTSCORE_MONGO_URI": ""})


def assert_one_red_line(result, *fragments):
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_simulate_then_status(tmp_path):
    result = cli(tmp_path, "simulate", "--customers", "1200", "--seed", "3", "--batch-size", "500")
    assert result.exit_code == 0, result.output
    assert "Stored 1,200 customers" in result.output
    status = cli(tmp_path, "status")
    assert status.exit_code == 0
    assert "customers" in status.output and "1,200" in status.output
    assert "events from" in status.output


def test_simulating_the_same_seed_twice_asks_for_reset(tmp_path):
    assert cli(tmp_path, "simulate", "-n", "50", "--seed", "1").exit_code == 0
    again = cli(tmp_path, "simulate", "-n", "50", "--seed", "1")
    assert_one_red_line(again, "--reset")
    assert cli(tmp_path, "simulate", "-n", "50", "--seed", "1", "--reset").exit_code == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["simulate", "--customers", "-5"], "--customers must be >= 0, got -5"),
        (["simulate", "--customers", "10", "--days", "0"], "days must be an integer >= 1, got 0"),
        (["simulate", "--customers", "10", "--missing-rate", "2"], "missing_rate"),
        (["simulate", "--customers", "10", "--end", "yesterday"], "--end 'yesterday'"),
        (["--mongo-uri", "postgres://x", "status"], "postgres://x"),
        (["ingest", "orders", "x.csv"], "choose customers or events"),
        (["ingest", "customers", "nope.csv"], "does not exist"),
        (["ingest", "customers", "x.csv", "--map", "oops"], "SOURCE=FIELD"),
    ],
)
def test_bad_input_is_one_red_line(tmp_path, monkeypatch, args, fragment):
    (tmp_path / "x.csv").write_text("customer_id,signup_date\nc1,2024-01-01\n")
    monkeypatch.chdir(tmp_path)
    assert_one_red_line(cli(tmp_path, *args), fragment)


def test_unreachable_mongodb_names_the_uri_without_password(tmp_path):
    uri = "mongodb://alice:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=200"
    result = cli(tmp_path, "--mongo-uri", uri, "status")
    assert_one_red_line(result, "cannot reach MongoDB at mongodb://alice:***@127.0.0.1:1", "docker compose")
    assert "s3cret" not in result.output


def test_ingest_csv_with_wrong_types_stores_the_good_rows(tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text(
        "cust_no,joined,age,income,region,satisfaction\n"
        "007,2023-02-01,34,52000,north,8\n"
        "008,2023-03-05,abc,41000,south,7\n"
        "009,not a date,40,,east,11\n"
        "010,2024-01-09,,,west,\n"
    )
    result = cli(tmp_path, "ingest", "customers", str(path), "--map", "cust_no=customer_id",
                 "--map", "joined=signup_date", "--map", "satisfaction=customer_satisfaction")
    assert_one_red_line(result, "2 customers rejected")
    assert "row 2: age='abc': is not a number" in result.output
    assert "row 3: signup_date='not a date'" in result.output
    store = open_store(Settings.build(home=tmp_path, environ={}))
    customers = {d["_id"]: d for d in store["customers"].find()}
    assert sorted(customers) == ["007", "010"]  # ids keep their leading zeros
    assert customers["007"]["age"] == 34 and customers["007"]["customer_satisfaction"] == 8
    assert customers["010"]["income"] is None


def test_ingest_is_idempotent_and_keeps_purchase_history_consistent(tmp_path):
    cust = tmp_path / "c.jsonl"
    cust.write_text("\n".join(json.dumps({"customer_id": c, "signup_date": "2024-01-01"}) for c in ("a", "b")))
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "zz"],
            "when": pd.to_datetime(["2024-02-01 10:00", "2024-03-01 09:30", "2024-02-15 00:00", "2024-02-15 00:00"]),
            "amount": [10.5, 20.25, 5.0, 1.0],
            "category": ["books", "home", "books", "books"],
        }
    )
    events.to_parquet(tmp_path / "e.parquet")
    assert cli(tmp_path, "ingest", "customers", str(cust)).exit_code == 0
    first = cli(tmp_path, "ingest", "events", str(tmp_path / "e.parquet"), "--map", "when=ts")
    assert_one_red_line(first, "1 events rejected")
    assert "customer_id='zz': unknown customer" in first.output
    second = cli(tmp_path, "ingest", "events", str(tmp_path / "e.parquet"), "--map", "when=ts")
    assert "0 inserted" in second.output and "3 unchanged or already stored" in second.output
    store = open_store(Settings.build(home=tmp_path, environ={}))
    a = store["customers"].find_one({"_id": "a"})["purchase_history"]
    assert (a["orders"], a["total_spent"], a["categories"]) == (2, 30.75, {"books": 1, "home": 1})
    assert str(a["first_purchase"]) == "2024-02-01 10:00:00" and str(a["last_purchase"]) == "2024-03-01 09:30:00"
    assert store["events"].count() == 3


def test_non_iso_dates_with_a_date_format(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,signup_date\nx,31/12/2023\n")
    assert cli(tmp_path, "ingest", "customers", str(path), "--date-format", "%d/%m/%Y").exit_code == 0
    store = open_store(Settings.build(home=tmp_path, environ={}))
    assert str(store["customers"].find_one({"_id": "x"})["signup_date"]) == "2023-12-31 00:00:00"


def test_stream_mode_keeps_inserting(tmp_path):
    assert cli(tmp_path, "simulate", "-n", "100", "--seed", "2").exit_code == 0
    result = cli(tmp_path, "simulate", "--customers", "0", "--stream", "--rate", "50", "--duration", "0.5")
    assert result.exit_code == 0, result.output
    store = open_store(Settings.build(home=tmp_path, environ={}))
    assert store["customers"].count() > 100
    assert store["events"].count({"ingested_at": {"$exists": True}}) > 0


@pytest.mark.slow
def test_simulate_20000_then_status_in_a_new_process(tmp_path):
    env = {**os.environ, "CUSTSCORE_HOME": str(tmp_path)}
    env.pop("CUSTSCORE_MONGO_URI", None)
    exe = [sys.executable, "-m", "custscore"]
    subprocess.run([*exe, "simulate", "--customers", "20000", "--seed", "7"], env=env, check=True, capture_output=True)
    out = subprocess.run([*exe, "status"], env=env, check=True, capture_output=True, text=True).stdout
    assert "20,000" in out and "events from" in out


@pytest.mark.slow
def test_a_killed_writer_leaves_only_whole_batches(tmp_path):
    env = {**os.environ, "CUSTSCORE_HOME": str(tmp_path)}
    env.pop("CUSTSCORE_MONGO_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "custscore", "simulate", "--customers", "50000", "--batch-size", "1000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    settings = Settings.build(home=tmp_path, environ={})
    deadline = time.monotonic() + 120
    store = None
    try:
        while time.monotonic() < deadline:  # await the event "a few batches committed"
            if (tmp_path / "store.sqlite").exists():
                store = store or open_store(settings)
                if store["customers"].count() >= 3000:
                    break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reopened = open_store(settings)
    n = reopened["customers"].count()
    assert n >= 3000 and n % 1000 == 0 and n < 50000
    orders = sum(c["purchase_history"]["orders"] for c in reopened["customers"].find({}, {"purchase_history": 1}))
    assert reopened["events"].count() == orders  # every stored customer has all its events, and only those
