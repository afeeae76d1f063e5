"""A business's own data: only customer ids, signup dates and a purchase log (issue 16, "A business's own data").

The store is built through the real ``ingest`` path from CSV files a shop could export: customers.csv with
customer_id and signup_date only, events.csv with customer_id, ts (dates, no times), amount and quantity,
including identical rows, a month with no purchases at all, and customers who never bought. Then
``train --task all``, ``report`` and ``explain`` run through the CLI as a user would run them.
"""

from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from custscore.cli import app
from custscore.config import Settings
from custscore.models import registry
from custscore.models.segment_names import RFM_NAMES, agrees
from custscore.simulator.generate import SimulationConfig, simulate
from custscore.store import open_store

END = dt.datetime(2025, 6, 30)
N_CUSTOMERS = 300
N_IDENTICAL = 25
GAP = (pd.Timestamp("2025-01-01"), pd.Timestamp("2025-02-01"))  # the shop was closed for a month
MAX_WARNINGS = 3  # one line per dropped-feature group or skipped task is fine; a flood is not
runner = CliRunner()


def _cli(home, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False,
                               env={"CUSTSCORE_MONGO_URI": "", "CUSTSCORE_AS_OF": ""})
    return result, [str(w.message) for w in caught]


def _write_files(folder):
    customers, events = [], []
    for batch in simulate(SimulationConfig(N_CUSTOMERS, seed=5, end=END, id_prefix="B")):
        customers += batch.customers
        events += batch.events
    cust = pd.DataFrame([{"customer_id": c["_id"], "signup_date": f"{c['signup_date']:%Y-%m-%d}"} for c in customers])
    ev = pd.DataFrame(events)[["customer_id", "ts", "amount", "quantity"]]
    ev["ts"] = pd.to_datetime(ev["ts"]).dt.normalize()
    ev = ev[(ev["ts"] < GAP[0]) | (ev["ts"] >= GAP[1])]
    ev = ev.drop_duplicates()  # same day, same amount: only the planted copies below are identical
    ev = pd.concat([ev, ev.sample(N_IDENTICAL, random_state=1)]).sort_values(["customer_id", "ts"])
    ev["ts"] = ev["ts"].dt.strftime("%Y-%m-%d")
    cust.to_csv(folder / "customers.csv", index=False)
    ev.to_csv(folder / "events.csv", index=False)
    never = int((~cust["customer_id"].isin(ev["customer_id"])).sum())
    return cust, ev, never


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The store after ingest and train --task all (shared by the read-only checks below)."""
    home = tmp_path_factory.mktemp("shop")
    cust, ev, never = _write_files(home)
    assert never > 0  # some sign-ups never bought
    out = {"home": home, "customers": cust, "events": ev}
    out["ingest_customers"], _ = _cli(home, "ingest", "customers", str(home / "customers.csv"))
    out["ingest_events"], _ = _cli(home, "ingest", "events", str(home / "events.csv"))
    out["train"], out["train_warnings"] = _cli(home, "train", "--task", "all", "--models", "linear,tree", "--cv", "3")
    return out


def test_ingest_merges_identical_rows_and_says_so(shop):
    assert shop["ingest_customers"].exit_code == 0, shop["ingest_customers"].output
    assert f"customers: {N_CUSTOMERS} inserted" in shop["ingest_customers"].output
    result = shop["ingest_events"]
    assert result.exit_code == 0, result.output
    stored = len(shop["events"]) - N_IDENTICAL
    assert f"events: {stored:,} inserted, 0 updated, 0 unchanged or already stored" in result.output
    assert f"{N_IDENTICAL} identical rows merged; give an event_id column to keep repeat purchases apart" \
        in result.output


@pytest.mark.slow
def test_train_all_runs_cleanly_without_a_warning_flood(shop):
    result = shop["train"]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert len(shop["train_warnings"]) <= MAX_WARNINGS, shop["train_warnings"][:10]
    warning_lines = [ln for ln in result.output.splitlines() if "warning" in ln.lower()]
    assert len(warning_lines) <= MAX_WARNINGS, warning_lines
    assert "churn leaderboard" in result.output and "segment leaderboard" in result.output
    flat = " ".join(result.output.split())  # rich wraps long lines at the runner's width
    assert "no values in the training data" in flat  # one line naming the dropped profile fields
    assert "satisfaction: skipped" in flat  # no survey data: said once, not a failure


@pytest.mark.slow
def test_segment_names_are_rfm_names_that_agree_with_their_profiles(shop):
    settings = Settings.build(home=shop["home"], environ={})
    store = open_store(settings)
    try:
        manifest = registry.load_model(store, settings, "segment").manifest
    finally:
        store.close()
    extra = manifest["extra"]
    names = list(extra["segment_names"].values())
    assert len(set(names)) == len(names) >= 3
    for profile in extra["profiles"]:
        name = profile["name"]
        base = name.split(" (")[0].rstrip("0123456789 ")
        assert base in {*RFM_NAMES, "no purchase yet"}, name
        pct = {axis: profile[f"{axis}_pct"] for axis in ("recency", "frequency", "monetary", "tenure")
               if profile.get(f"{axis}_pct") is not None}
        assert agrees(name, pct), (name, pct)
    assert not any("spenders" in n or "regular" in n for n in names)


@pytest.mark.slow
def test_report_runs_and_says_drop_for_fields_without_values(shop):
    result, caught = _cli(shop["home"], "report")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "no values at all in 6 fields (age, income, support_tickets, customer_satisfaction, region, channel)" \
        in " ".join(result.output.split())
    page = next((shop["home"] / "reports").glob("*/index.html")).read_text(encoding="utf-8")
    assert "drop: no values" in page and "impute median" not in page
    assert "income_vs_satisfaction.png" not in page and 'alt="income by satisfaction"' not in page
    assert "No income vs satisfaction figure: no customer has both income and customer_satisfaction." in page
    figures = {p.name for p in next((shop["home"] / "reports").glob("*/")).glob("*.png")}
    assert "income_vs_satisfaction.png" not in figures and "satisfaction_by_group.png" not in figures
    assert len(caught) <= MAX_WARNINGS, caught[:10]


@pytest.mark.slow
def test_explain_runs_for_a_buyer_and_names_a_segment(shop):
    buyer = shop["events"]["customer_id"].iloc[0]
    last_day = pd.to_datetime(shop["events"]["ts"]).max().strftime("%Y-%m-%d")
    result, caught = _cli(shop["home"], "explain", buyer, "--as-of", last_day)  # a log that ended in the past
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "stale" not in result.output
    first = next(ln for ln in result.output.splitlines() if ln.startswith(buyer))
    assert "segment" in first
    assert any(n in first for n in (*RFM_NAMES, "no purchase yet")), first
    assert len(caught) <= MAX_WARNINGS, caught[:10]
