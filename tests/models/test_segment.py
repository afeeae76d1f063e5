"""Segmentation: K-Means recovers the simulated personas and the rule tree assigns new customers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from custscore.errors import InputError
from custscore.models.features import customer_features
from custscore.models.segment import SegmentModel
from custscore.models.segment_report import elbow_silhouette_figure, persona_ari, rules_text
from custscore.simulator.generate import SimulationConfig, simulate

END = dt.datetime(2026, 1, 1)


def _simulated_frame(n: int, seed: int, prefix: str = "C") -> tuple[pd.DataFrame, pd.Series]:
    """Features of n simulated customers as of END, plus their true personas."""
    customers, events = [], []
    for batch in simulate(SimulationConfig(n, seed=seed, end=END, id_prefix=prefix)):
        customers += batch.customers
        events += batch.events
    frame = customer_features(customers, events, END)
    if not any(c.startswith("share_") for c in frame.columns):
        # features.py has no category shares yet: add them the way it counts categories (orders per category).
        ev = pd.DataFrame(events)
        shares = pd.crosstab(ev["customer_id"], ev["category"], normalize="index").add_prefix("share_")
        frame = frame.join(shares.reindex(frame.index).fillna(0.0).astype(float))
    personas = pd.Series([c["_truth"]["persona"] for c in customers], index=frame.index)
    return frame, personas


@pytest.fixture(scope="module")
def data():
    return _simulated_frame(20_000, seed=7)


@pytest.fixture(scope="module")
def model(data):
    return SegmentModel().fit(data[0])


@pytest.mark.slow
def test_segments_recover_personas_on_20k(model, data):
    frame, personas = data
    assert persona_ari(model, frame, personas) >= 0.6
    assert persona_ari(model, frame, frame.index.map(personas)) == persona_ari(model, frame, personas)


@pytest.mark.slow
def test_k_table_has_a_row_per_k_and_k_is_the_best_silhouette(model):
    table = model.k_table_
    assert list(table["k"]) == list(range(3, 9))
    assert table[["inertia", "silhouette", "davies_bouldin"]].notna().all().all()
    assert table["inertia"].is_monotonic_decreasing
    assert model.k_ == table.loc[table["silhouette"].idxmax(), "k"]


@pytest.mark.slow
def test_segments_have_unique_names_and_profiles(model, data):
    names = list(model.names_.values())
    assert sorted(model.names_) == list(range(model.k_))
    assert all(n.strip() for n in names) and len(set(names)) == len(names)
    prof = model.profiles_
    assert prof["size"].sum() == len(data[0]) and prof["share"].sum() == pytest.approx(1.0)
    assert list(prof["name"]) == names and "spend_mean" in prof.columns


@pytest.mark.slow
def test_rules_read_in_feature_names_and_segment_names(model):
    text = rules_text(model)
    assert any(f in text for f in model.features_)
    assert any(n in text for n in model.names_.values())


@pytest.mark.slow
def test_tree_agrees_with_kmeans(model, data):
    assert model.tree_agreement_ >= 0.9
    assert list(model.tree_.named_steps) == ["prep", "model"]
    assert np.mean(model.predict_kmeans(data[0]) == model.labels_) > 0.999


@pytest.mark.slow
def test_predicts_unseen_customers_with_missing_values(model):
    new, _ = _simulated_frame(300, seed=99, prefix="N")
    new.iloc[:20, :] = np.nan
    seg = model.predict(new)
    assert len(seg) == 300 and set(seg) <= set(model.names_)
    with pytest.raises(InputError, match="lacks segment features"):
        model.predict(new.drop(columns=["spend_mean"]))


@pytest.mark.slow
def test_elbow_silhouette_figure_is_a_png(model, tmp_path):
    path = elbow_silhouette_figure(model, tmp_path / "fig" / "k.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_same_seed_same_labels_and_clear_errors(data):
    frame = data[0].iloc[:1500]
    a = SegmentModel(k_range=(3, 4), seed=3).fit(frame)
    b = SegmentModel(k_range=(3, 4), seed=3).fit(frame)
    assert np.array_equal(a.labels_, b.labels_) and np.array_equal(a.predict(frame), b.predict(frame))
    assert SegmentModel(k_range=(3, 4), k=5).fit(frame).k_ == 5
    with pytest.raises(InputError, match="k_range"):
        SegmentModel(k_range=(1, 4)).fit(frame)
    with pytest.raises(InputError, match="not in X"):
        SegmentModel(features=["nope"]).fit(frame)
