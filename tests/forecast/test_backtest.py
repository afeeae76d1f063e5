"""Backtest on simulated demand (fixed seed): accuracy against the baseline and the oracle, coverage, no leaks."""

from __future__ import annotations

import numpy as np
import pytest

from custscore.errors import InputError
from custscore.forecast.backtest import context_at, run_backtest
from custscore.forecast.families import GlobalBoosted, SeasonalNaive, statsforecast_available
from custscore.forecast.series import Panel, from_frame
from custscore.simulator.stores import DemandConfig, simulate_demand

FAMILIES = ("seasonal_naive", *(("tsb",) if statsforecast_available() else ()), "global_gbm")


@pytest.fixture(scope="module")
def panel():
    data = simulate_demand(DemandConfig(n_products=4, n_stores=2, seed=3))
    return from_frame(data.sales, ("product_id", "store_id"), "D")


@pytest.fixture(scope="module")
def result(panel):
    return run_backtest(panel, FAMILIES, horizon=28, windows=3)


def _row(result, model):
    return result.leaderboard.set_index("model").loc[model]


@pytest.mark.slow
def test_chosen_model_beats_seasonal_naive_and_is_near_the_oracle(result):
    chosen, naive, oracle = _row(result, result.winner), _row(result, "seasonal_naive"), _row(result, "oracle")
    assert result.winner != "seasonal_naive"
    assert chosen["mase"] <= 0.9 * naive["mase"]
    assert chosen["mase"] <= 1.25 * oracle["mase"]
    assert "lowest mean backtest MASE" in result.rule


@pytest.mark.slow
def test_80_percent_intervals_cover_70_to_90_percent(result):
    assert 0.70 <= _row(result, result.winner)["cov80"] <= 0.90
    assert _row(result, result.winner)["cov95"] >= _row(result, result.winner)["cov80"]


def test_three_windows_scored_per_series(result, panel):
    assert sorted(result.per_series["window"].unique()) == [1, 2, 3]
    assert set(result.per_series["key"]) == set(panel.keys)
    assert result.windows == [len(panel.periods) - 28 * w for w in (3, 2, 1)]


@pytest.mark.slow
def test_a_spike_after_the_origin_leaves_the_forecast_unchanged(panel):
    origin = len(panel.periods) - 28
    before = GlobalBoosted(max_iter=30).forecast(context_at(panel, origin, 28))
    spiked = Panel(panel.keys, panel.periods, panel.y.copy(), panel.promo, panel.freq,
                   panel.by, panel.start.copy())
    spiked.y[:, origin + 3] += 10_000
    after = GlobalBoosted(max_iter=30).forecast(context_at(spiked, origin, 28))
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.hi95, after.hi95)
    # ... while the same spike before the origin does move it
    spiked.y[:, origin - 3] += 10_000
    moved = SeasonalNaive().forecast(context_at(spiked, origin, 28, clip=False))
    assert not np.array_equal(moved.mean, SeasonalNaive().forecast(context_at(panel, origin, 28, clip=False)).mean)


def test_too_short_a_history_names_the_fix(panel):
    with pytest.raises(InputError, match="lower --horizon or --windows"):
        run_backtest(panel, ("seasonal_naive",), horizon=300, windows=3)


def test_unknown_family_is_named():
    data = simulate_demand(DemandConfig(n_products=1, n_stores=1, days=120, online=False))
    with pytest.raises(InputError, match="--families 'prophet' is not known"):
        run_backtest(from_frame(data.sales, ("product_id",), "D"), ("prophet",))
