"""A demand run in the model registry: its backtest leaderboard, read back by the report's demand section."""

from __future__ import annotations

import datetime as dt

import pytest

from custscore.analytics.demand_section import demand_section
from custscore.analytics.page import Figures
from custscore.config import Settings
from custscore.forecast.production import DemandOptions, stored_backtest, train_demand
from custscore.models.registry import list_models, production_records
from custscore.simulator.stores import DemandConfig, simulate_demand
from custscore.store import open_store
from custscore.store.loading import load_customers, load_events


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("demand_registry")
    settings = Settings.build(mongo_uri="memory:", home=home, environ={})
    data = simulate_demand(DemandConfig(n_products=2, n_stores=1, days=200, online=False, seed=2,
                                        end=dt.date(2026, 6, 30)))
    store = open_store(settings)
    load_customers(store, [{"customer_id": "walk-in", "signup_date": "2025-01-01"}])
    events = [{k: v for k, v in e.items() if k != "_truth"} | {"customer_id": "walk-in", "amount": 1.0}
              for e in data.events()]
    load_events(store, events)
    result = train_demand(store, DemandOptions(by="product,store", families=("seasonal_naive", "global_gbm")),
                          settings=settings)
    yield store, result, home
    store.close()


def test_the_run_is_registered_with_its_leaderboard_and_not_promoted(trained):
    store, result, _ = trained
    (row,) = list_models(store, "demand")
    assert row["version"] == result.registered and row["kind"] == "forecast" and row["aliases"] == []
    assert row["family"] == result.backtest.winner and row["primary_metric"] == "mase"
    board = result.backtest.leaderboard.set_index("model")
    assert row["val"] == pytest.approx(board.loc[result.backtest.winner, "mase"], abs=1e-6)
    assert not [r for r in production_records(store) if r["task"] == "demand"]  # the scorer and model sections skip it
    extra = stored_backtest(store, result.version)["extra"]
    assert [r["model"] for r in extra["leaderboard"]] == ["seasonal_naive", "global_gbm"]
    assert extra["forecast_version"] == result.version and extra["windows"] == 3 and extra["horizon"] == 28
    assert stored_backtest(store, "demand-nothing-D-20260630") is None


def test_the_report_section_shows_the_stored_leaderboard_and_coverage(trained):
    store, result, home = trained
    (home / "out").mkdir()
    html = "".join(demand_section(store, Figures(home / "out")).parts)
    winner = result.backtest.winner
    row = result.backtest.leaderboard.set_index("model").loc[winner]
    assert "Backtest leaderboard (3 rolling-origin windows of 28 periods; lower MASE is better)" in html
    assert f'<tr class="winner">\n      <td>{winner} ★ winner</td>' in html
    assert (f"Interval coverage in the backtest: the chosen model&#x27;s 80% intervals held {row['cov80']:.0%} of the "
            f"actuals and its 95% intervals {row['cov95']:.0%}") in html
    assert f"Registered as demand {result.registered}" in html
