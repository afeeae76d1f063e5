"""The out-of-time backtest: its dates, its table, and that events after the as-of date change nothing it scores."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from custscore.config import Settings
from custscore.errors import InputError
from custscore.models.backtest import (
    BASE_RATE,
    BGNBD,
    HEURISTIC,
    check_dates,
    default_dates,
    features_as_of,
    lift_top_decile,
    run_backtest,
    score_as_of,
)
from custscore.models.dataset import read_corpus
from custscore.models.train import TrainOptions
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import open_store
from tests.cli.test_cli_foundation import assert_one_red_line, cli

FIRST, LAST = dt.datetime(2024, 1, 1), dt.datetime(2026, 1, 1)


def test_default_dates_are_the_latest_fully_observed_pair():
    t1, t2 = default_dates(FIRST, LAST, 90)
    assert (t1, t2) == (dt.datetime(2025, 7, 5), dt.datetime(2025, 10, 3))
    check_dates(t1, t2, 90, FIRST, LAST)


@pytest.mark.parametrize(("t1", "t2", "message"), [
    (dt.datetime(2025, 6, 1), dt.datetime(2025, 7, 1),
     "as-of=2025-07-01 is before train-cutoff + horizon (2025-08-30): the training labels would overlap the scoring "
     "period; pass --as-of 2025-08-30 or later"),
    (dt.datetime(2025, 6, 1), dt.datetime(2025, 12, 1),
     "as-of=2025-12-01 needs outcomes up to 2026-03-01 but the last event is 2026-01-01; pass --as-of 2025-10-03 or "
     "earlier, or a shorter --horizon"),
    (dt.datetime(2023, 6, 1), dt.datetime(2025, 6, 1),
     "train-cutoff=2023-06-01 is not after the first event (2024-01-01); pass a later --train-cutoff"),
])
def test_impossible_dates_are_refused_in_one_line(t1, t2, message):
    with pytest.raises(InputError) as err:
        check_dates(t1, t2, 90, FIRST, LAST)
    assert str(err.value) == message


def test_lift_top_decile():
    y = np.array([1] * 10 + [0] * 90)
    assert lift_top_decile(y, np.r_[np.ones(10), np.zeros(90)]) == pytest.approx(10.0)
    assert lift_top_decile(y, np.r_[np.zeros(10), np.ones(90)]) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def backtested(tmp_path_factory):
    home = tmp_path_factory.mktemp("backtest")
    settings = Settings.build(mongo_uri="memory:", home=home, environ={})
    store = open_store(settings)
    run_simulation(store, SimulationConfig(n_customers=1500, seed=4, end=LAST, days=730))
    result = run_backtest(store, settings, horizon_days=90,
                          options=TrainOptions(cv=2, seed=0, families=("linear", "bgnbd")))
    yield store, settings, result
    store.close()


@pytest.mark.slow
def test_backtest_table_has_the_winner_bgnbd_the_heuristic_and_the_base_rate(backtested):
    _, settings, result = backtested
    table = result.table.set_index("model")
    assert list(table.index) == [f"winner: {result.winner}", BGNBD, HEURISTIC, BASE_RATE]
    assert list(table.columns) == ["roc_auc", "pr_auc", "brier", "brier_vs_base", "lift_top_decile"]
    assert (result.train_cutoff, result.as_of) == default_dates(read_corpus(backtested[0]).first_event,
                                                                read_corpus(backtested[0]).last_event, 90)
    winner = table.iloc[0]
    assert winner["roc_auc"] > table.loc[HEURISTIC, "roc_auc"] - 0.02
    assert winner["brier"] < table.loc[BASE_RATE, "brier"]
    assert table.loc[BASE_RATE, "brier_vs_base"] == 1.0
    assert result.figure.exists() and result.figure.parent == settings.home / "reports"
    assert any(n.startswith("winner minus BG/NBD ROC-AUC: ") for n in result.notes)


@pytest.mark.slow
def test_events_after_the_as_of_date_change_no_feature_and_no_score(backtested):
    store, _, result = backtested
    corpus = read_corpus(store)
    t2 = pd.Timestamp(result.as_of)
    before = score_as_of(result.fitted, result.train_data, corpus, result.as_of)
    customers = list(before.X.index[:50])
    planted = pd.DataFrame({"customer_id": customers * 3,
                            "ts": [t2 + pd.Timedelta(hours=h) for h in (1, 24 * 30, 24 * 400) for _ in customers],
                            "amount": 999.0, "quantity": 5.0, "category": "electronics"})
    later = replace(corpus, events=pd.concat([corpus.events, planted], ignore_index=True),
                    last_event=planted["ts"].max().to_pydatetime())
    pd.testing.assert_frame_equal(features_as_of(later, result.as_of), features_as_of(corpus, result.as_of))
    after = score_as_of(result.fitted, result.train_data, later, result.as_of)
    for name in ("winner", "heuristic", "bgnbd"):
        pd.testing.assert_series_equal(getattr(after, name), getattr(before, name))
    pd.testing.assert_frame_equal(after.X, before.X)


@pytest.mark.slow
def test_cli_backtest_refuses_overlapping_dates(tmp_path):
    assert cli(tmp_path, "simulate", "--customers", "300", "--seed", "2", "--end", "2026-01-01").exit_code == 0
    result = cli(tmp_path, "backtest", "--train-cutoff", "2025-06-01", "--as-of", "2025-07-01")
    assert_one_red_line(result, "as-of=2025-07-01 is before train-cutoff + horizon (2025-08-30)")
