"""Budgeted hyperparameter search."""

from __future__ import annotations

import random
import types

import numpy as np
import pytest
from sklearn.utils.validation import check_is_fitted

from custscore.models import tuning
from custscore.models.tuning import tune
from custscore.models.zoo import make_candidates
from tests.models.test_zoo import CAT, NUM, make_frame


class TickClock:
    """A clock for the budget rule that advances ``tick`` seconds per reading, whatever the machine's speed."""

    def __init__(self, tick: float):
        self.tick = tick
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = TickClock(tick=0.25)
    monkeypatch.setattr(tuning, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def test_tiny_budget_returns_fitted_defaults_without_searching(monkeypatch, clock):
    X, y = make_frame("classification")
    pipe = make_candidates("classification", NUM, CAT, families=["forest"])["forest"]
    monkeypatch.setattr(tuning, "cross_val_score", lambda *a, **k: pytest.fail("a 0.01 s budget allows no search"))
    fitted, params, summary = tune("forest", pipe, X, y, "classification", budget_seconds=0.01)
    check_is_fitted(fitted)
    assert params == {}
    assert summary == "forest: kept defaults (budget 0s allows no search; one fit takes 0.2s)"


def test_search_stops_within_budget_and_returns_fitted_pipeline(monkeypatch, clock):
    X, y = make_frame("regression")
    pipe = make_candidates("regression", NUM, CAT, families=["tree"])["tree"]
    scored = []
    real_cross_val_score = tuning.cross_val_score
    monkeypatch.setattr(tuning, "cross_val_score", lambda *a, **k: scored.append(1) or real_cross_val_score(*a, **k))
    fitted, params, summary = tune("tree", pipe, X, y, "regression", budget_seconds=3, cv=3)
    one_fit = 0.25  # each timed fit reads the clock twice
    assert clock.now <= 3 + one_fit + clock.tick  # the budget plus one fit, as the docstring promises
    assert 2 <= len(scored) < tuning.MAX_CANDIDATES  # it searched, and the budget (not the cap) stopped it
    assert f"best of {len(scored)} candidates" in summary or f"{len(scored)} candidates in" in summary
    assert fitted.predict(X.iloc[:5]).shape == (5,)
    assert "candidates" in summary
    assert all(k.startswith("model__") for k in params)


def test_ensembles_are_fitted_but_not_tuned():
    X, y = make_frame("classification")
    pipe = make_candidates("classification", NUM, CAT, families=["voting"])["voting"]
    fitted, params, summary = tune("voting", pipe, X, y, "classification", budget_seconds=1)
    assert params == {} and "not tuned" in summary
    assert fitted.predict_proba(X.iloc[:3]).shape == (3, 2)


@pytest.mark.slow
def test_mlp_uses_keras_tuner_within_budget(monkeypatch):
    clock = TickClock(tick=1.0)  # one default fit = 1 s, so a 12 s budget allows trials on any machine
    monkeypatch.setattr(tuning, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    X, y = make_frame("classification")
    pipe = make_candidates("classification", NUM, CAT, families=["mlp"])["mlp"].set_params(model__epochs=5)
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    for module in (random, np.random):  # what keras.utils.set_random_seed calls
        monkeypatch.setattr(module, "seed", lambda *a, **k: pytest.fail("tuning reseeded a global generator"))
    fitted, params, summary = tune("mlp", pipe, X, y, "classification", budget_seconds=12)
    assert fitted.predict_proba(X.iloc[:3]).shape == (3, 2)
    assert "KerasTuner" in summary and set(params) == {"model__hidden", "model__dropout", "model__learning_rate"}
    # seeded locally: nothing reseeded, and the process's NumPy generator is where it was
    assert np.array_equal(np.random.get_state()[1], before)
