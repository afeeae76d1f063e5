"""The model registry: safe round trips, integrity checks, the production alias."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from xgboost import XGBClassifier

from custscore.config import Settings
from custscore.errors import ArtifactIntegrityError, ModelError
from custscore.models import artifacts
from custscore.models.registry import (
    list_models,
    load_model,
    production_version,
    promote,
    save_model,
    training_fingerprint,
)
from custscore.store import open_store
from custscore.store.blobs import open_blobs

NUM = ["age", "income", "orders"]
CAT = ["region"]
FEATURES = [{"name": n, "kind": "num", "dtype": "float64"} for n in NUM] + [
    {"name": "region", "kind": "cat", "dtype": "object"}]


@pytest.fixture
def frame():
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame({
        "age": rng.normal(40, 10, n), "income": rng.lognormal(10, 0.5, n), "orders": rng.poisson(5, n).astype(float),
        "region": rng.choice(np.array(["north", "south", "east", None], dtype=object), n),
    }, index=[f"c{i:04d}" for i in range(n)])
    df.loc[df.index[::17], "age"] = np.nan
    df["region"] = df["region"].astype(object)
    y_reg = 0.05 * df["age"].fillna(40) + 1e-5 * df["income"] + rng.normal(0, 0.3, n)
    y_clf = (y_reg > y_reg.median()).astype(int)
    return df, y_reg, y_clf


@pytest.fixture
def reg(tmp_path):
    """(store, settings) on memory: with models under tmp_path."""
    settings = Settings.build(mongo_uri="memory:", home=tmp_path, environ={})
    st = open_store(settings)
    yield st, settings
    st.close()


def prep():
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("log", FunctionTransformer(np.log1p)),
                    ("scale", StandardScaler())])
    cat = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                    ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    return ColumnTransformer([("num", num, NUM), ("cat", cat, CAT)])


def xgb():
    return XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0)


def save(st, settings, task, pipe, kind="regression", **kw):
    kw.setdefault("metrics", {"mae": 0.25, "r2": 0.8})
    return save_model(st, settings, task, pipe, kind=kind, features=FEATURES, training_fingerprint="abc123", **kw)


def ridge_pipeline(frame):
    df, y, _ = frame
    return Pipeline([("prep", prep()), ("model", Ridge())]).fit(df, y)


def test_sklearn_round_trip_on_every_backend(store, tmp_path, frame):
    settings = Settings.build(mongo_uri="memory:", home=tmp_path, environ={})
    pipe = ridge_pipeline(frame)
    version = save(store, settings, "satisfaction", pipe, threshold=None, extra={"note": "ridge"})
    loaded = load_model(store, settings, "satisfaction")
    assert loaded.version == version and loaded.task == "satisfaction"
    assert loaded.manifest["layout"] == "skops"
    np.testing.assert_array_equal(loaded.pipeline.predict(frame[0]), pipe.predict(frame[0]))
    assert production_version(store, "satisfaction") == version
    assert [m["version"] for m in list_models(store, "satisfaction")] == [version]


@pytest.mark.parametrize("imbalanced", [False, True])
def test_xgboost_pipeline_round_trip_uses_ubj_and_skops(reg, frame, imbalanced):
    st, settings = reg
    df, _, y = frame
    if imbalanced:
        from imblearn.over_sampling import SMOTE
        from imblearn.pipeline import Pipeline as ImbPipeline

        pipe = ImbPipeline([("prep", prep()), ("smote", SMOTE(random_state=0)), ("model", xgb())]).fit(df, y)
    else:
        pipe = Pipeline([("prep", prep()), ("model", xgb())]).fit(df, y)
    version = save(st, settings, "churn", pipe, kind="classification", metrics={"roc_auc": 0.9}, threshold=0.35)
    loaded = load_model(st, settings, "churn", version)
    assert type(loaded.pipeline) is type(pipe)
    assert [name for name, _ in loaded.pipeline.steps] == [name for name, _ in pipe.steps]
    assert isinstance(loaded.pipeline.named_steps["model"], XGBClassifier)
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(df), pipe.predict_proba(df))
    np.testing.assert_array_equal(loaded.pipeline.predict(df), pipe.predict(df))
    formats = {entry["format"] for entry in loaded.manifest["artifacts"].values()}
    assert formats == {"xgboost-ubj", "skops", "json"}
    assert loaded.manifest["threshold"] == 0.35


def test_segment_kmeans_and_tree_round_trip(reg, frame):
    st, settings = reg
    df = frame[0]
    km = Pipeline([("prep", prep()), ("model", KMeans(3, n_init=3, random_state=0))]).fit(df)
    tree = Pipeline([("prep", prep()), ("model", DecisionTreeClassifier(max_depth=3, random_state=0))])
    tree.fit(df, km.predict(df))
    version = save(st, settings, "segment", {"kmeans": km, "tree": tree}, kind="segment",
                   metrics={"silhouette": 0.3}, extra={"segments": {"0": "loyal", "1": "new", "2": "at risk"}})
    loaded = load_model(st, settings, "segment", version).pipeline
    np.testing.assert_array_equal(loaded["kmeans"].predict(df), km.predict(df))
    np.testing.assert_array_equal(loaded["tree"].predict_proba(df), tree.predict_proba(df))


def test_voting_with_xgboost_member_falls_back_to_hash_checked_pickle(reg, frame):
    st, settings = reg
    df, _, y = frame
    vote = VotingClassifier([("lr", LogisticRegression()), ("xgb", xgb())], voting="soft")
    pipe = Pipeline([("prep", prep()), ("model", vote)]).fit(df, y)
    version = save(st, settings, "churn", pipe, kind="classification", metrics={"roc_auc": 0.9})
    loaded = load_model(st, settings, "churn", version)
    assert loaded.manifest["layout"] == "pickle"
    assert {e["format"] for e in loaded.manifest["artifacts"].values()} == {"pickle"}
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(df), pipe.predict_proba(df))


@pytest.mark.slow
def test_keras_mlp_round_trip_uses_keras_format(reg, frame):
    from custscore.models.keras_mlp import KerasMLPClassifier

    st, settings = reg
    df, _, y = frame
    model = KerasMLPClassifier(hidden=(8,), epochs=3, batch_size=64, class_weight={0: 1.0, 1: 2.0})
    pipe = Pipeline([("prep", prep()), ("model", model)]).fit(df, y)
    version = save(st, settings, "churn", pipe, kind="classification", metrics={"roc_auc": 0.7})
    loaded = load_model(st, settings, "churn", version)
    assert loaded.manifest["layout"] == "keras"
    assert "model.keras" in loaded.manifest["artifacts"]
    est = loaded.pipeline.named_steps["model"]
    assert type(est) is KerasMLPClassifier and est.get_params() == model.get_params()
    np.testing.assert_array_equal(est.classes_, model.classes_)
    np.testing.assert_allclose(loaded.pipeline.predict_proba(df), pipe.predict_proba(df), rtol=1e-6)


def test_manifest_has_the_registry_fields(reg, frame):
    st, settings = reg
    extra = {"leaderboard": [{"model": "ridge", "mae": np.float64(0.25)}], "when": dt.datetime(2024, 1, 2)}
    version = save(st, settings, "satisfaction", ridge_pipeline(frame), extra=extra)
    path = settings.home / "models" / "satisfaction" / version / "manifest.json"
    manifest = json.loads(path.read_text())
    for key in ("task", "kind", "version", "created_at", "features", "metrics", "threshold", "training_fingerprint",
                "libraries", "artifacts", "extra"):
        assert key in manifest
    assert dt.datetime.fromisoformat(manifest["created_at"]).utcoffset() == dt.timedelta(0)
    assert manifest["features"] == FEATURES and manifest["metrics"] == {"mae": 0.25, "r2": 0.8}
    assert {"python", "sklearn", "numpy", "pandas", "skops", "xgboost"} <= set(manifest["libraries"])
    for name, entry in manifest["artifacts"].items():
        assert len(entry["sha256"]) == 64 and entry["bytes"] == (path.parent / name).stat().st_size
    assert manifest["extra"] == {"leaderboard": [{"model": "ridge", "mae": 0.25}], "when": "2024-01-02T00:00:00"}
    assert st["models"].find_one({"_id": f"satisfaction:{version}"})["metrics"] == manifest["metrics"]


def test_changed_byte_is_refused_and_nothing_is_loaded(reg, frame, monkeypatch):
    st, settings = reg
    version = save(st, settings, "churn", Pipeline([("prep", prep()), ("model", xgb())]).fit(frame[0], frame[2]),
                   kind="classification")
    target = settings.home / "models" / "churn" / version / "model.ubj"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    calls = []
    monkeypatch.setattr(artifacts, "load", lambda *a: calls.append(a))
    with pytest.raises(ArtifactIntegrityError, match=r"model churn .*model\.ubj.*SHA-256.*custscore train --task"):
        load_model(st, settings, "churn")
    assert calls == []


def test_swapped_artifact_or_manifest_from_another_version_is_refused(reg, frame):
    st, settings = reg
    df, y, _ = frame
    v1 = save(st, settings, "satisfaction", ridge_pipeline(frame))
    v2 = save(st, settings, "satisfaction", Pipeline([("prep", prep()), ("model", Ridge(alpha=50))]).fit(df, y))
    d1, d2 = (settings.home / "models" / "satisfaction" / v for v in (v1, v2))
    shutil.copy(d1 / "pipeline.skops", d2 / "pipeline.skops")
    with pytest.raises(ArtifactIntegrityError, match="pipeline.skops"):
        load_model(st, settings, "satisfaction", v2)
    shutil.copy(d1 / "manifest.json", d2 / "manifest.json")  # now manifest and artifact agree with each other
    with pytest.raises(ArtifactIntegrityError, match="manifest.json does not match the registry record"):
        load_model(st, settings, "satisfaction", v2)
    assert load_model(st, settings, "satisfaction", v1).version == v1


def test_edited_manifest_or_missing_file_is_refused(reg, frame):
    st, settings = reg
    version = save(st, settings, "satisfaction", ridge_pipeline(frame))
    directory = settings.home / "models" / "satisfaction" / version
    original = (directory / "manifest.json").read_text()
    (directory / "manifest.json").write_text(original.replace('"mae": 0.25', '"mae": 0.05'))
    with pytest.raises(ArtifactIntegrityError, match="manifest.json"):
        load_model(st, settings, "satisfaction")
    (directory / "manifest.json").write_text(original)
    (directory / "pipeline.skops").unlink()
    load_model(st, settings, "satisfaction")  # the folder is a cache: a missing file comes back from the database
    assert (directory / "pipeline.skops").is_file()
    (directory / "pipeline.skops").unlink()
    record = st["models"].find_one({"_id": f"satisfaction:{version}"})
    open_blobs(st).delete(next(a["sha256"] for a in record["artifacts"] if a["file"] == "pipeline.skops"))
    with pytest.raises(ArtifactIntegrityError, match=r"pipeline\.skops is missing"):
        load_model(st, settings, "satisfaction")


def test_skops_file_with_untrusted_type_is_refused(tmp_path):
    import collections

    import skops.io as sio

    sio.dump({"counts": collections.Counter("aab")}, tmp_path / "pipeline.skops")
    with pytest.raises(ArtifactIntegrityError, match="collections.Counter"):
        artifacts.load(tmp_path, "skops")


def test_promote_moves_the_single_production_alias(reg, frame):
    st, settings = reg
    pipe = ridge_pipeline(frame)
    v1 = save(st, settings, "satisfaction", pipe)
    v2 = save(st, settings, "satisfaction", pipe, promote=False)
    other = save(st, settings, "churn", pipe, kind="classification")
    assert production_version(st, "satisfaction") == v1
    promote(st, settings, "satisfaction", v2)
    assert load_model(st, settings, "satisfaction", "production").version == v2
    holders = [m["version"] for m in list_models(st, "satisfaction") if "production" in m["aliases"]]
    assert holders == [v2]
    assert production_version(st, "churn") == other
    with pytest.raises(ModelError, match=f"no version '20000101-000000-000000'; known versions: {v2}, {v1}"):
        promote(st, settings, "satisfaction", "20000101-000000-000000")
    assert production_version(st, "satisfaction") == v2


def test_unknown_task_version_or_alias(reg, frame):
    st, settings = reg
    with pytest.raises(ModelError, match="no model for task 'churn'.*custscore train --task churn"):
        load_model(st, settings, "churn")
    version = save(st, settings, "churn", ridge_pipeline(frame), promote=False)
    with pytest.raises(ModelError, match=f"no 'production' model.*custscore promote churn VERSION.*{version}"):
        load_model(st, settings, "churn")
    with pytest.raises(ModelError, match=f"known versions: {version}"):
        load_model(st, settings, "churn", "20990101-000000-abcdef")


def test_versions_are_unique_sortable_and_listed_newest_first(reg, frame):
    st, settings = reg
    pipe = ridge_pipeline(frame)
    versions = [save(st, settings, "satisfaction", pipe, promote=False) for _ in range(4)]
    assert len(set(versions)) == 4 and versions == sorted(versions)
    listed = list_models(st)
    assert [m["version"] for m in listed] == versions[::-1]
    assert listed[0]["primary"] == {"mae": 0.25, "r2": 0.8} and listed[0]["artifact_bytes"] > 0


def test_failed_save_leaves_no_version_behind(reg, frame):
    st, settings = reg
    df, y, _ = frame
    unpicklable = Pipeline([("prep", FunctionTransformer(lambda x: x[NUM].fillna(0))), ("model", Ridge())]).fit(df, y)
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        save(st, settings, "satisfaction", unpicklable)
    assert list((settings.home / "models" / "satisfaction").iterdir()) == []
    assert list_models(st) == []


def test_training_fingerprint_ignores_order_and_sees_changes(frame):
    df, y, _ = frame
    base = training_fingerprint(df, y)
    assert len(base) == 16
    shuffled = df.sample(frac=1, random_state=1)[df.columns[::-1]]
    assert training_fingerprint(shuffled, y.loc[shuffled.index]) == base
    changed = df.copy()
    changed.iloc[3, 1] += 1.0
    assert training_fingerprint(changed, y) != base
    assert training_fingerprint(df, y + 1) != base
    assert training_fingerprint(df) != base
