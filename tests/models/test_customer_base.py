"""Customer-base models: RFM summaries, BG/NBD, Gamma-Gamma and CLV, and their sklearn steps.

Reference values: Fader, Hardie & Lee (2005) and the lifetimes documentation, on the CDNOW sample that
lifetimes ships (tests/data/CDNOW_README.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import approx_fprime
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from custscore.errors import InputError, ModelError
from custscore.models.bgnbd import BetaGeoModel, bgnbd_log_likelihood, bgnbd_log_likelihood_grad, simulate_bgnbd
from custscore.models.customer_base import (
    CUSTOMER_BASE_COLUMNS,
    BetaGeoChurnClassifier,
    CustomerBaseFeatures,
    customer_base_inputs,
)
from custscore.models.features import customer_features
from custscore.models.gamma_gamma import GammaGammaModel, clv
from custscore.models.pareto_nbd import ParetoNBDModel
from custscore.models.rfm_summary import rfm_from_features, rfm_summary

DATA = Path(__file__).resolve().parents[1] / "data"
TRUE = dict(r=0.243, alpha=30.0, a=0.79, b=2.43)  # CDNOW-like, alpha in days


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(DATA / "cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_spend() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")
    return frame.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})


@pytest.fixture(scope="module")
def cdnow_bg(cdnow) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    T = np.random.default_rng(7).uniform(60, 400, 20_000)
    return simulate_bgnbd(20_000, **TRUE, T=T, horizon=90, seed=11)


# ---------------------------------------------------------------- the reference implementation's values

def test_bgnbd_matches_published_cdnow_parameters(cdnow_bg, cdnow):
    assert len(cdnow) == 2357
    assert cdnow_bg.n_customers_ == 2357
    published = {"r_": 0.243, "alpha_": 4.414, "a_": 0.793, "b_": 2.426}
    for name, value in published.items():
        assert getattr(cdnow_bg, name) == pytest.approx(value, rel=1e-2), name
    assert cdnow_bg.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)  # Fader, Hardie & Lee 2005, table 1


def test_bgnbd_conditional_expectation_of_the_papers_example_customer(cdnow_bg):
    # the paper's worked example: x=2, t_x=30.43, T=38.86 weeks -> 1.226 purchases in the next 39 weeks
    one = pd.DataFrame({"frequency": [2.0], "recency": [30.43], "T": [38.86]})
    assert cdnow_bg.expected_purchases(one, 39)[0] == pytest.approx(1.226, abs=1e-3)


def test_gamma_gamma_matches_published_cdnow_parameters(cdnow_spend):
    gg = GammaGammaModel().fit(cdnow_spend)
    assert gg.n_customers_ == 946  # the repeat buyers
    assert gg.p_ == pytest.approx(6.25, rel=1e-2)
    assert gg.q_ == pytest.approx(3.74, rel=1e-2)
    assert gg.v_ == pytest.approx(15.44, rel=1e-2)
    # lifetimes docs: conditional_expected_average_profit of the first customers
    assert gg.expected_spend(cdnow_spend.head(3)) == pytest.approx([24.6586, 18.9115, 35.1710], rel=1e-3)


def test_clv_without_discount_is_expected_purchases_times_expected_spend(cdnow_spend):
    bg = BetaGeoModel().fit(cdnow_spend)
    gg = GammaGammaModel().fit(cdnow_spend)
    value = clv(bg, gg, cdnow_spend, horizon_days=52)
    assert value == pytest.approx(bg.expected_purchases(cdnow_spend, 52) * gg.expected_spend(cdnow_spend))
    discounted = clv(bg, gg, cdnow_spend, horizon_days=52, discount_rate=0.1)
    assert np.all(discounted < value)
    assert np.all(discounted > value / 1.1)  # a year's discount at most


def test_pareto_nbd_matches_published_cdnow_parameters(cdnow):
    pn = ParetoNBDModel().fit(cdnow)
    published = {"r_": 0.55, "alpha_": 10.58, "s_": 0.61, "beta_": 11.67}  # Fader, Hardie & Lee 2005, table 1
    for name, value in published.items():
        assert getattr(pn, name) == pytest.approx(value, rel=1e-2), name
    assert pn.log_likelihood_ == pytest.approx(-9595.0, abs=0.1)
    quiet = pn.p_no_purchase(cdnow, 39)
    alive = pn.p_alive(cdnow)
    assert np.all((quiet >= 1 - alive - 1e-9) & (quiet <= 1) & (alive >= 0) & (alive <= 1))
    assert np.all(pn.expected_purchases(cdnow, 39) >= 0)
    # the two models agree on the whole: about the same expected repeat purchases over the next 39 weeks
    bg = BetaGeoModel().fit(cdnow)
    assert pn.expected_purchases(cdnow, 39).sum() == pytest.approx(bg.expected_purchases(cdnow, 39).sum(), rel=0.1)


# ---------------------------------------------------------------- the maths

def test_p_no_purchase_is_the_likelihood_of_the_same_history_seen_longer(cdnow_bg, cdnow):
    # an independent derivation: P(0 in (T, T+t] | x, t_x, T) = L(x, t_x, T + t) / L(x, t_x, T)
    longer = cdnow.assign(T=cdnow["T"] + 13.0)
    ratio = np.exp(cdnow_bg.log_likelihood(longer) - cdnow_bg.log_likelihood(cdnow))
    assert cdnow_bg.p_no_purchase(cdnow, 13.0) == pytest.approx(ratio, rel=1e-9)


def test_gradient_matches_finite_differences(simulated):
    theta = np.log([0.3, 20.0, 0.9, 2.0])
    args = (simulated["frequency"].to_numpy(), simulated["recency"].to_numpy(), simulated["T"].to_numpy())
    w = np.full(len(simulated), 1.0 / len(simulated))
    ll, grad = bgnbd_log_likelihood_grad(np.exp(theta), *args, w)
    assert ll == pytest.approx((w * bgnbd_log_likelihood(np.exp(theta), *args)).sum())
    numeric = approx_fprime(theta, lambda th: bgnbd_log_likelihood_grad(np.exp(th), *args, w)[0], 1e-7)
    assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_fit_recovers_simulated_parameters(simulated):
    bg = BetaGeoModel().fit(simulated)
    for name, value in TRUE.items():
        assert getattr(bg, name + "_") == pytest.approx(value, rel=0.15), name


def test_predictions_agree_with_what_happens_in_the_holdout(simulated):
    bg = BetaGeoModel().fit(simulated)
    quiet = bg.p_no_purchase(simulated, 90)
    expected = bg.expected_purchases(simulated, 90)
    observed_quiet = (simulated["future"] == 0).to_numpy()
    assert quiet.mean() == pytest.approx(observed_quiet.mean(), abs=0.01)
    assert expected.mean() == pytest.approx(simulated["future"].mean(), rel=0.05)
    # calibrated in every decile of predicted risk, not just on average
    deciles = pd.qcut(quiet, 10, labels=False, duplicates="drop")
    by_decile = pd.DataFrame({"pred": quiet, "obs": observed_quiet, "d": deciles}).groupby("d").mean()
    assert (by_decile["pred"] - by_decile["obs"]).abs().max() < 0.03
    # P(alive) agrees with who really had not dropped out by T
    assert bg.p_alive(simulated).mean() == pytest.approx(simulated["alive"].mean(), abs=0.02)


def test_penalizer_shrinks_shape_parameters_towards_one(cdnow):
    plain = BetaGeoModel().fit(cdnow)
    shrunk = BetaGeoModel(penalizer=0.05).fit(cdnow)
    assert abs(np.log(shrunk.b_)) < abs(np.log(plain.b_))
    assert abs(np.log(shrunk.r_)) < abs(np.log(plain.r_))


histories = st.tuples(st.integers(0, 60), st.floats(0.0, 1.0), st.floats(1.0, 800.0))


@settings(max_examples=60, deadline=None)
@given(histories, st.floats(1.0, 365.0))
def test_probabilities_are_probabilities(cdnow_bg, history, horizon):
    x, share, T = history
    one = pd.DataFrame({"frequency": [float(x)], "recency": [share * T if x else 0.0], "T": [T]})
    quiet = cdnow_bg.p_no_purchase(one, horizon)[0]
    alive = cdnow_bg.p_alive(one)[0]
    assert 0.0 <= quiet <= 1.0
    assert 0.0 <= alive <= 1.0
    assert quiet >= 1.0 - alive - 1e-12  # a dead customer never buys
    assert cdnow_bg.expected_purchases(one, horizon)[0] >= 0.0
    assert cdnow_bg.p_no_purchase(one, horizon * 2)[0] <= quiet + 1e-12  # longer horizon, more chances


def test_churn_probability_monotone_where_it_should_be(cdnow_bg):
    x = np.arange(1, 30, dtype=float)
    just_bought = pd.DataFrame({"frequency": x, "recency": 30.0, "T": 30.0})
    assert np.all(np.diff(cdnow_bg.p_no_purchase(just_bought, 10)) < 0)  # buys often and just bought
    assert np.all(np.diff(cdnow_bg.expected_purchases(just_bought, 10)) > 0)
    quieter = pd.DataFrame({"frequency": 5.0, "recency": np.linspace(30, 1, 20), "T": 30.0})
    assert np.all(np.diff(cdnow_bg.p_no_purchase(quieter, 10)) > 0)  # the longer since the last purchase
    assert np.all(np.diff(cdnow_bg.p_alive(quieter)) < 0)
    # BG/NBD's signature: many purchases long ago and none since make a customer look gone
    long_ago = pd.DataFrame({"frequency": [1.0, 20.0], "recency": [5.0, 5.0], "T": [38.0, 38.0]})
    assert cdnow_bg.p_alive(long_ago)[1] < cdnow_bg.p_alive(long_ago)[0]


def test_non_buyers_are_left_out_and_predicted_nan(cdnow):
    with_new = pd.concat([cdnow, pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [np.nan]})])
    bg = BetaGeoModel().fit(with_new)
    assert bg.n_customers_ == 2357
    assert np.isnan(bg.p_no_purchase(with_new, 10)[-1])
    assert np.isnan(bg.p_alive(with_new)[-1])
    assert np.isnan(bg.expected_purchases(with_new, 10)[-1])


def test_bad_histories_name_the_field_and_the_fix():
    bad = pd.DataFrame({"frequency": [1.0, 2.0], "recency": [3.0, 9.0], "T": [5.0, 8.0]})
    with pytest.raises(InputError) as err:
        BetaGeoModel().fit(bad)
    assert str(err.value) == "X.recency=9.0 at row 1 is invalid; it must be at most T (age at last purchase <= age)"
    with pytest.raises(InputError, match=r"^X lacks column\(s\) T; pass rfm_summary"):
        BetaGeoModel().fit(bad.drop(columns="T"))
    with pytest.raises(InputError, match=r"^penalizer=-1 must be a number >= 0"):
        BetaGeoModel(penalizer=-1).fit(bad.iloc[:1])
    with pytest.raises(ModelError, match="not fitted"):
        BetaGeoModel().p_alive(bad)
    with pytest.raises(InputError, match=r"^horizon t=-5.0 must be a number of periods >= 0"):
        BetaGeoModel().fit(pd.DataFrame({"frequency": [1.0, 0.0], "recency": [3.0, 0.0], "T": [5.0, 6.0]})) \
            .p_no_purchase(bad.iloc[:1], -5)


@pytest.mark.parametrize("model", [BetaGeoModel, ParetoNBDModel, GammaGammaModel])
def test_the_likelihood_models_share_their_settings_and_the_not_fitted_message(model):
    assert model().get_params() == {"max_iter": 500, "penalizer": 0.0}
    assert clone(model(penalizer=0.01)).penalizer == 0.01
    with pytest.raises(ModelError) as err:
        model().params_  # noqa: B018 - the property raises
    assert str(err.value) == f"{model.__name__} is not fitted; call fit(summary) first"
    with pytest.raises(InputError, match=r"^penalizer=-1 must be a number >= 0"):
        model(penalizer=-1).fit(np.zeros((1, 3)))


def test_pareto_nbd_names_itself_when_there_are_too_few_buyers():
    with pytest.raises(InputError) as err:
        ParetoNBDModel().fit(pd.DataFrame({"frequency": [1.0, 0.0], "recency": [3.0, 0.0], "T": [5.0, np.nan]}))
    assert str(err.value) == "Pareto/NBD needs at least 2 buyers with T > 0; got 1 buyers"


# ---------------------------------------------------------------- RFM summaries

def _events(rows):
    return pd.DataFrame(rows, columns=["customer_id", "ts", "amount"]).assign(ts=lambda f: pd.to_datetime(f["ts"]))


def test_rfm_summary_follows_the_lifetimes_conventions_in_days():
    ev = _events([
        ("a", "2024-01-01 09:00", 10.0), ("a", "2024-01-01 17:00", 5.0),   # one purchase day, 15
        ("a", "2024-01-11 10:00", 20.0), ("a", "2024-01-31 23:00", 40.0),
        ("a", "2024-03-01 00:00", 99.0),                                    # after as_of: ignored
        ("b", "2024-01-21 12:00", 7.0),
    ])
    out = rfm_summary(ev, dt.datetime(2024, 2, 10, 12), customer_ids=["a", "b", "never"])
    assert list(out.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert out.loc["a"].tolist() == [2.0, 30.0, 40.0, 30.0]   # repeats on 11 and 31 Jan, mean (20 + 40) / 2
    assert out.loc["b"].tolist() == [0.0, 0.0, 20.0, 0.0]
    never = out.loc["never"]
    assert never[["frequency", "recency", "monetary_value"]].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(never["T"])
    assert list(rfm_summary(ev, dt.datetime(2024, 2, 10)).index) == ["a", "b"]  # buyers only by default


def test_rfm_summary_names_missing_columns():
    with pytest.raises(InputError, match=r"^events lack column\(s\) amount; pass a frame with customer_id, ts"):
        rfm_summary(pd.DataFrame({"customer_id": ["a"], "ts": ["2024-01-01"]}), dt.datetime(2024, 2, 1))


def test_feature_frame_gives_the_same_inputs_when_orders_fall_on_distinct_days():
    ev = _events([("a", "2024-01-01", 10.0), ("a", "2024-01-11", 20.0), ("a", "2024-01-31", 40.0),
                  ("b", "2024-01-21", 7.0)]).assign(quantity=1.0, category="x")
    customers = [{"_id": cid, "signup_date": dt.datetime(2023, 12, 1)} for cid in ("a", "b", "new")]
    as_of = dt.datetime(2024, 2, 10)
    feats = customer_features(customers, ev, as_of)
    derived = rfm_from_features(feats)
    exact = rfm_summary(ev, as_of, customer_ids=feats.index)
    assert derived[["frequency", "recency", "T"]].loc[["a", "b"]].to_numpy() == pytest.approx(
        exact[["frequency", "recency", "T"]].loc[["a", "b"]].to_numpy())
    assert np.isnan(derived.loc["new", "T"])
    assert derived.loc["a", "monetary_value"] == pytest.approx(70.0 / 3)  # spend_mean includes the first order


# ---------------------------------------------------------------- sklearn steps

@pytest.fixture(scope="module")
def frame(simulated) -> tuple[pd.DataFrame, pd.Series]:
    """A feature-like frame for 4,000 simulated buyers plus 200 non-buyers, with churn labels."""
    s = simulated.head(4000)
    orders = s["frequency"] + 1
    feats = pd.DataFrame({
        "orders_total": orders,
        "recency_days": s["T"] - s["recency"],
        "gap_mean_days": (s["recency"] / s["frequency"]).where(s["frequency"] > 0),
        "spend_mean": np.random.default_rng(3).gamma(4.0, 10.0, len(s)),
        "age": 40.0,
    })
    none = pd.DataFrame({"orders_total": np.zeros(200), "recency_days": np.nan, "gap_mean_days": np.nan,
                         "spend_mean": np.nan, "age": 30.0})
    X = pd.concat([feats, none], ignore_index=True)
    X.index = [f"C{i}" for i in range(len(X))]
    y = pd.Series(np.r_[(s["future"] == 0).astype(int).to_numpy(), np.r_[np.ones(150), np.zeros(50)]],
                  index=X.index, dtype=int)
    return X, y


def test_transformer_appends_the_customer_base_columns(frame):
    X, _ = frame
    step = CustomerBaseFeatures(horizon_days=90).fit(X)
    out = step.transform(X)
    assert list(out.columns) == [*X.columns, *CUSTOMER_BASE_COLUMNS]
    assert list(step.get_feature_names_out()) == list(out.columns)
    buyers = X["orders_total"] > 0
    assert out.loc[buyers, CUSTOMER_BASE_COLUMNS].notna().all().all()
    assert out.loc[~buyers, CUSTOMER_BASE_COLUMNS].isna().all().all()
    assert out.loc[buyers, "p_no_purchase"].between(0, 1).all()
    assert (out.loc[buyers, "clv_12m"] > 0).all()
    only = CustomerBaseFeatures(append=False).fit(X).transform(X)
    assert list(only.columns) == CUSTOMER_BASE_COLUMNS


@pytest.mark.parametrize("discount_rate", [0.0, 0.1])
def test_the_array_path_gives_the_frame_path_s_values(frame, discount_rate):
    X, _ = frame
    step = CustomerBaseFeatures(horizon_days=90, discount_rate=discount_rate).fit(X)
    want = step.transform(X).loc[:, CUSTOMER_BASE_COLUMNS].to_numpy()
    got = step.transform_array(X.loc[:, list(step.feature_names_in_)].to_numpy(dtype=float))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.isnan(got[(X["orders_total"] == 0).to_numpy()]).all()  # non-buyers stay NaN


def test_the_array_path_answers_a_repeated_matrix_from_its_last_answer_as_a_copy(frame):
    X, _ = frame
    step = CustomerBaseFeatures(horizon_days=90).fit(X)
    rows = X.loc[:, list(step.feature_names_in_)].to_numpy(dtype=float)
    first = step.transform_array(rows)
    first[:] = -1.0  # a caller writing into its answer changes nothing kept
    again = step.transform_array(rows)
    np.testing.assert_array_equal(again, CustomerBaseFeatures(horizon_days=90).fit(X).transform_array(rows))
    other = rows[::-1].copy()
    np.testing.assert_array_equal(step.transform_array(other), again[::-1])  # new rows are computed, not reused


def test_transformer_learns_only_from_the_rows_it_is_fitted_on(frame):
    X, _ = frame
    half = CustomerBaseFeatures().fit(X.iloc[:2000])
    full = CustomerBaseFeatures().fit(X)
    assert half.bg_.n_customers_ == 2000
    assert half.bg_.r_ != full.bg_.r_
    assert clone(half).get_params() == half.get_params()


def test_classifier_sits_in_a_pipeline_and_cross_validates(frame):
    X, y = frame
    pipe = Pipeline([("model", BetaGeoChurnClassifier(horizon_days=90))])
    auc = cross_val_score(pipe, X, y, cv=3, scoring="roc_auc")
    assert auc.mean() > 0.75
    clf = BetaGeoChurnClassifier(horizon_days=90).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert proba.sum(axis=1) == pytest.approx(np.ones(len(X)))
    assert clf.non_buyer_rate_ == pytest.approx(0.75)
    assert proba[-200:, 1] == pytest.approx(np.full(200, 0.75))
    assert set(clf.predict(X)) <= {0, 1}
    # on buyers it is exactly BG/NBD's P(no purchase in the horizon)
    rfm = customer_base_inputs(X.iloc[:5])
    assert proba[:5, 1] == pytest.approx(clf.bg_.p_no_purchase(rfm, 90))


def test_classifier_refuses_labels_that_are_not_churn_labels(frame):
    X, _ = frame
    with pytest.raises(InputError) as err:
        BetaGeoChurnClassifier().fit(X, np.full(len(X), 2))
    assert str(err.value) == ("y has labels [2]; BetaGeoChurnClassifier needs 0/1 churn labels "
                              "(1 = no purchase in the horizon)")
    with pytest.raises(InputError, match=r"^horizon_days=0 must be a positive number of days"):
        BetaGeoChurnClassifier(horizon_days=0).fit(X, np.zeros(len(X)))
    with pytest.raises(InputError, match=r"^feature frame lacks column\(s\) gap_mean_days"):
        CustomerBaseFeatures().fit(X.drop(columns="gap_mean_days"))


def test_on_simulated_customers_bgnbd_is_a_calibrated_churn_model():
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from custscore.models.features import customers_frame, events_frame
    from custscore.models.labels import churn_labels
    from custscore.simulator.generate import SimulationConfig, simulate

    end = dt.datetime(2025, 1, 1)
    customers, events = [], []
    for batch in simulate(SimulationConfig(n_customers=600, seed=3, end=end, products=False)):
        customers += batch.customers
        events += batch.events
    ev = events_frame(events)
    cutoff = end - dt.timedelta(days=90)
    feats = customer_features(customers, ev, cutoff)
    y = churn_labels(customers_frame(customers), ev, cutoff, 90)
    X = feats.loc[y.index]
    churn = BetaGeoChurnClassifier(horizon_days=90).fit(X, y).predict_proba(X)[:, 1]
    assert roc_auc_score(y, churn) > 0.8
    assert brier_score_loss(y, churn) < brier_score_loss(y, np.full(len(y), y.mean()))
    added = CustomerBaseFeatures(horizon_days=90).fit(feats).transform(feats)
    never = feats["orders_total"] == 0
    assert never.any()
    assert added.loc[never, CUSTOMER_BASE_COLUMNS].isna().all().all()
    assert added.loc[~never, CUSTOMER_BASE_COLUMNS].notna().all().all()
