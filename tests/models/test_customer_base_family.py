"""BG/NBD inside churn training: a family of its own and features of every ML family, explained per raw column."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from custscore.config import Settings
from custscore.models import customer_base_family as CBF
from custscore.models import dataset as D
from custscore.models import zoo
from custscore.models.explain import make_explainer
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import open_store


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    settings = Settings.build(mongo_uri="memory:", home=tmp_path_factory.mktemp("cbf"), environ={})
    store = open_store(settings)
    run_simulation(store, SimulationConfig(n_customers=700, seed=9, end=dt.datetime(2026, 1, 1)))
    data = D.churn_data(D.read_corpus(store), None, 90)
    store.close()
    return data


def test_churn_candidates_get_the_bgnbd_family_and_the_custbase_features(churn):
    cands = zoo.make_candidates("classification", churn.numeric, churn.categorical, seed=0, balance="weights",
                                families=None, y=churn.y, customer_base_horizon=90)
    assert "bgnbd" in cands
    linear = cands["linear"]
    assert [name for name, *_ in linear.named_steps["prep"].transformers] == ["num", "cat", "custbase"]
    plain = zoo.make_candidates("classification", churn.numeric, churn.categorical, families=("linear", "bgnbd"))
    assert list(plain) == ["linear"]  # without a churn horizon there is no BG/NBD family
    regression = zoo.make_candidates("regression", churn.numeric, churn.categorical, customer_base_horizon=90)
    assert "bgnbd" not in regression


@pytest.mark.parametrize("family", ["linear", "bgnbd"])
def test_fitted_families_are_explained_per_raw_column_and_give_score_values(churn, family):
    X, y = churn.X, churn.y
    pipe = zoo.make_candidates("classification", churn.numeric, churn.categorical, families=(family,), y=y,
                               customer_base_horizon=90)[family].fit(X, y)
    p = pipe.predict_proba(X)[:, 1]
    assert np.all((p >= 0) & (p <= 1))
    explanation = make_explainer(pipe, X.iloc[:60], "classification").explain(X.iloc[:20])
    assert explanation.values.shape == (20, X.shape[1])
    touched = set(np.asarray(explanation.feature_names)[np.abs(explanation.values).sum(axis=0) > 0])
    if family == "bgnbd":
        assert touched <= set(CBF.INPUTS) and "recency_days" in touched
    values = CBF.customer_base_values(pipe, X.iloc[:20])
    assert list(values.columns) == list(CBF.SCORE_FIELDS)
    assert values["p_alive"].between(0, 1).all() and (values["expected_purchases"] >= 0).all()
    assert (values["clv_12m"] >= 0).all()
