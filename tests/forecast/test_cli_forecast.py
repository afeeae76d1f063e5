"""train --task demand, forecast and stockouts from the command line; the monthly series a user brings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custscore.cli import app
from custscore.config import Settings
from custscore.forecast.production import FORECASTS
from custscore.simulator.stores import DemandConfig, simulate_demand
from custscore.store import open_store
from custscore.store.loading import load_customers, load_events
from custscore.store.schema import STOCK
from custscore.store.validation import validate_event

DATA = Path(__file__).resolve().parents[1] / "data"
runner = CliRunner()


def cli(home, *args):
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False, env={"CUSTSCORE_MONGO_URI": ""})


@pytest.fixture(scope="module")
def monthly(tmp_path_factory):
    home = tmp_path_factory.mktemp("monthly")
    assert cli(home, "ingest", "customers", str(DATA / "monthly_sales_shop.csv")).exit_code == 0
    loaded = cli(home, "ingest", "events", str(DATA / "monthly_sales.csv"), "--map", "month=ts", "--map", "shop=customer_id",
                 "--map", "units=quantity", "--map", "revenue=amount")
    assert loaded.exit_code == 0 and "54 inserted" in loaded.output
    trained = cli(home, "train", "--task", "demand", "--by", "total", "--freq", "M", "--horizon", "3")
    return home, trained


@pytest.mark.slow
def test_a_users_monthly_series_is_forecast_at_monthly_frequency(monthly, tmp_path):
    home, trained = monthly
    assert trained.exit_code == 0, trained.output
    assert "demand leaderboard (3 rolling-origin windows of 3 x M; 1 series by total" in trained.output
    assert "3 forecasts written as demand-total-M-20250630" in trained.output
    shown = cli(home, "forecast", "--plot", str(tmp_path / "f.png"))
    assert shown.exit_code == 0
    for month in ("2025-07-01", "2025-08-01", "2025-09-01"):
        assert month in shown.output
    assert (tmp_path / "f.png").stat().st_size > 5000


@pytest.mark.slow
def test_retraining_the_same_version_is_idempotent(monthly):
    home, _ = monthly
    assert cli(home, "train", "--task", "demand", "--by", "total", "--freq", "M", "--horizon", "3").exit_code == 0
    with open_store(Settings.build(home=home, environ={})) as store:
        docs = list(store.collection(FORECASTS).find({}))
    assert len(docs) == 3 and {d["version"] for d in docs} == {"demand-total-M-20250630"}
    assert {"key", "period", "yhat", "lo80", "hi80", "lo95", "hi95", "model", "version", "as_of"} <= set(docs[0])
    assert all(d["lo95"] <= d["lo80"] <= d["yhat"] <= d["hi80"] <= d["hi95"] for d in docs)


def test_unknown_key_and_bad_freq_are_one_red_line(monthly):
    home, _ = monthly
    bad = cli(home, "forecast", "--key", "nope")
    assert bad.exit_code == 1 and "--key 'nope' has no forecasts in demand-total-M-20250630; keys look like 'total'" in bad.output
    freq = cli(home, "train", "--task", "demand", "--freq", "Q")
    assert freq.exit_code == 1 and "--freq 'Q' is not known; use D (days), W (weeks) or M (months)" in freq.output


@pytest.mark.slow
def test_stockouts_lists_the_series_to_reorder(tmp_path):
    home = tmp_path / "home"
    data = simulate_demand(DemandConfig(n_products=2, n_stores=1, days=200, online=False, seed=2,
                                        end=dt.date(2026, 6, 30)))
    with open_store(Settings.build(home=home, environ={})) as store:
        load_customers(store, [{"customer_id": "walk-in", "signup_date": "2025-01-01"}])
        events = [{**e, "customer_id": "walk-in", "amount": 10.0 * e["quantity"]} for e in data.events()]
        for e in events:
            e.pop("_truth")
        report = load_events(store, events)
        assert report.rejected == 0 and report.inserted == len(events)
    assert cli(home, "train", "--task", "demand", "--by", "product,store").exit_code == 0
    keys = sorted(data.sales["product_id"].unique())
    stock = tmp_path / "stock.csv"
    stock.write_text(f"product_id,store_id,on_hand\n{keys[0]},ST001,0\n{keys[1]},ST001,100000\n")
    shown = cli(home, "stockouts", "--stock", str(stock), "--lead-time", "5")
    assert shown.exit_code == 0, shown.output
    assert "1 of 2 series to reorder at P(stockout) >= 20%" in shown.output
    first, second = (line for line in shown.output.splitlines() if "ST001" in line)
    assert keys[0] in first and "100%" in first and keys[1] in second and " 0%" in second
    missing = cli(home, "stockouts", "--stock", str(tmp_path / "none.csv"))
    assert missing.exit_code == 1 and "does not exist" in missing.output
    nothing = cli(home, "stockouts")
    assert nothing.exit_code == 1 and "no stock stored yet; run: custscore stock import FILE" in nothing.output
    imported = cli(home, "stock", "import", str(stock))
    assert imported.exit_code == 0 and "stock: 2 rows imported from stock.csv; 2 products/stores held" in imported.output
    assert cli(home, "stockouts", "--lead-time", "5").output == shown.output  # the stored stock: the same list
    stock.write_text(f"product_id,store_id,on_hand\n{keys[1]},ST001,0\n")  # a later count of one product
    assert cli(home, "stock", "import", str(stock)).exit_code == 0
    assert "2 of 2 series to reorder" in cli(home, "stockouts").output


def test_store_id_and_promo_are_validated():
    good, _ = validate_event({"customer_id": "c", "ts": "2026-01-01", "amount": 1, "store_id": "ST1", "promo": "yes"})
    assert good["promo"] is True and good["store_id"] == "ST1"
    _, problems = validate_event({"customer_id": "c", "ts": "2026-01-01", "amount": 1, "promo": "maybe"})
    assert str(problems[0]) == "row 0: promo='maybe': is not true/false; use true, false, 1, 0, yes or no"


def test_stock_import_names_the_bad_row_and_keeps_what_was_stored(tmp_path):
    home = tmp_path / "home"
    good = tmp_path / "good.csv"
    good.write_text("product_id,store_id,on_hand,lead_time_days\nbooks-0001,ST001,5,\nbooks-0002,ST001,7,3\n")
    assert cli(home, "stock", "import", str(good)).exit_code == 0
    for text, message in (("product_id,store_id,on_hand\nbooks-0001,ST001,-2\n", "row 1: on_hand=-2 is not a number >= 0"),
                          ("product_id,store_id,on_hand\nbooks-0001,ST001,1\nbooks-0001,ST001,2\n",
                           "row 2: 'books-0001|ST001' repeats row 1; give one row per product and store"),
                          ("product_id,store_id,on_hand\nbooks-0001,,1\n", "row 1: store_id is empty"),
                          ("sku,on_hand\nx,1\n", "has no 'product_id' column (columns: sku, on_hand)")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        out = cli(home, "stock", "import", str(bad), "--replace")
        assert out.exit_code == 1 and message in out.output, out.output
    with open_store(Settings.build(home=home, environ={})) as store:
        docs = sorted(store.collection(STOCK).find({}), key=lambda d: d["_id"])
    assert [(d["_id"], d["on_hand"], d["lead_time_days"]) for d in docs][1] == ("books-0002|ST001", 7.0, 3.0)
    assert docs[0]["lead_time_days"] is None  # empty: the --lead-time default
