"""Training end to end on 20k simulated customers: quality against the oracles, the registry, predict/explain."""

from __future__ import annotations

import datetime as dt

import pytest

from custscore.config import Settings
from custscore.errors import ArtifactIntegrityError
from custscore.models import feature_reads
from custscore.models import features as F
from custscore.models.predict import load_production
from custscore.models.registry import load_model
from custscore.models.train import TrainOptions, train
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import open_store

pytestmark = pytest.mark.slow
FAMILIES = ("linear", "gboost", "xgboost")  # the full zoo runs in tests/cli/test_cli_models.py on a smaller base


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("train")
    settings = Settings.build(mongo_uri="memory:", home=home, environ={})
    store = open_store(settings)
    run_simulation(store, SimulationConfig(n_customers=20_000, seed=7, end=dt.datetime(2026, 1, 1)))
    results = train(store, settings, TrainOptions(cv=3, seed=0, families=FAMILIES))
    yield store, settings, {r.task: r for r in results}
    store.close()


def _row(result, name_part):
    board = result.leaderboard
    return board[board["model"].str.contains(name_part, regex=False)].iloc[0]


def test_churn_model_reaches_90_percent_of_the_oracle_margin(trained):
    churn = trained[2]["churn"]
    best = _row(churn, churn.winner)["test_roc_auc"]
    oracle = _row(churn, "oracle (true parameters)")["test_roc_auc"]
    assert best - 0.5 >= 0.9 * (oracle - 0.5), (best, oracle)
    assert churn.threshold is not None and 0 < churn.threshold < 1


def test_satisfaction_mae_beats_the_mean_predictor_by_30_percent(trained):
    sat = trained[2]["satisfaction"]
    best = _row(sat, sat.winner)["test_mae"]
    baseline = _row(sat, "baseline")["test_mae"]
    assert best <= 0.7 * baseline, (best, baseline)


def test_segments_match_the_personas(trained):
    seg = trained[2]["segment"]
    assert _row(seg, "decision tree")["ari_vs_personas"] >= 0.6
    assert "|---" in seg.rules or "<=" in seg.rules


def test_every_task_is_registered_explained_and_promoted(trained):
    store, settings, results = trained
    for task, result in results.items():
        loaded = load_model(store, settings, task)
        assert loaded.version == result.version
        assert loaded.manifest["extra"]["shap_importance"]
        assert any(p.name.endswith("_shap_importance.png") for p in result.figures)


def test_a_customer_unknown_at_training_time_is_scored_and_explained(trained):
    store, settings, _ = trained
    models = load_production(store, settings)
    now = dt.datetime(2026, 1, 1)
    doc = {"_id": "NEW1", "age": 29, "income": 31000.0, "region": "south", "channel": "app", "support_tickets": 4,
           "signup_date": now - dt.timedelta(days=200)}
    events = F.events_frame([{"customer_id": "NEW1", "ts": now - dt.timedelta(days=d), "amount": 40.0,
                              "quantity": 1, "category": "electronics"} for d in (150, 120, 100)])
    [scored] = models.score_documents([doc], events, now)
    assert 0 <= scored.score["churn_probability"] <= 1 and scored.score["risk"] in ("low", "medium", "high")
    assert 1 <= scored.score["satisfaction"] <= 10 and scored.score["segment_name"]
    assert len(scored.score["reasons"]) == 3
    assert all(r["sentence"] and ("raises" in r["sentence"] or "lowers" in r["sentence"])
               for r in scored.score["reasons"])
    assert set(scored.shap) == {"churn", "satisfaction", "segment"}


def test_a_changed_artifact_byte_is_refused_and_nothing_loads(trained):
    store, settings, results = trained
    version_dir = settings.home / "models" / "churn" / results["churn"].version
    artifact = next(p for p in sorted(version_dir.iterdir()) if p.is_file() and p.name != "manifest.json")
    original = artifact.read_bytes()
    try:
        artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ArtifactIntegrityError, match=artifact.name):
            load_production(store, settings)
    finally:
        artifact.write_bytes(original)
    assert load_production(store, settings).versions["churn"] == results["churn"].version


def test_the_workers_hot_path_skips_only_satisfaction_shap_and_changes_no_score(trained):
    store, settings, _ = trained
    models = load_production(store, settings)
    now = dt.datetime(2026, 1, 1)
    ids = [d["_id"] for d in store["customers"].find({}, projection={"_id": 1}, limit=40)]
    docs = feature_reads.read_customers(store, ids)
    full = models.score_documents(docs, feature_reads.read_events(store, ids, until=now), now)  # predict / explain / API
    hot = models.score_batch(store, docs, now)  # the worker

    assert [h.score for h in hot] == [f.score for f in full]
    assert all("satisfaction" in f.shap for f in full)
    assert all(h.shap == {k: v for k, v in f.shap.items() if k != "satisfaction"} for h, f in zip(hot, full, strict=True))
