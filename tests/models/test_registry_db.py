"""Models live in the database: an empty home loads them, a tampered blob is refused, export/import verify."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from custscore.config import Settings
from custscore.errors import ArtifactIntegrityError, InputError, ModelError
from custscore.models.registry import load_model, save_model
from custscore.models.transfer import export_model, import_model
from custscore.store import open_store
from custscore.store.blobs import open_blobs

FEATURES = [{"name": "x", "kind": "num", "dtype": "float64"}]


def fitted():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=50)})
    return Ridge().fit(X, 2 * X["x"]), X


def save(store, settings):
    model, _ = fitted()
    return save_model(store, settings, "satisfaction", model, kind="regression", features=FEATURES,
                      metrics={"mae": 0.1}, training_fingerprint="f")


def test_empty_home_on_the_same_store_loads_a_model_trained_elsewhere(store, tmp_path):
    trainer = Settings.build(mongo_uri="memory:", home=tmp_path / "laptop", environ={})
    worker = Settings.build(mongo_uri="memory:", home=tmp_path / "worker", environ={})
    version = save(store, trainer)
    loaded = load_model(store, worker, "satisfaction")
    _, X = fitted()
    assert loaded.version == version
    np.testing.assert_allclose(loaded.pipeline.predict(X), fitted()[0].predict(X))
    assert (tmp_path / "worker" / "models" / "satisfaction" / version / "manifest.json").is_file()


def test_a_tampered_blob_is_refused_and_nothing_reaches_disk(tmp_path):
    settings = Settings.build(mongo_uri="memory:", home=tmp_path / "a", environ={})
    st = open_store(settings)
    version = save(st, settings)
    record = st["models"].find_one({"_id": f"satisfaction:{version}"})
    sha = record["artifacts"][0]["sha256"]
    st["model_blobs"].update_one({"_id": f"{sha}:000000"}, {"$set": {"data": b"evil"}})
    other = Settings.build(mongo_uri="memory:", home=tmp_path / "b", environ={})
    with pytest.raises(ArtifactIntegrityError, match="does not match its SHA-256"):
        load_model(st, other, "satisfaction")
    assert not (tmp_path / "b" / "models" / "satisfaction" / version / record["artifacts"][0]["file"]).exists()


def test_a_record_whose_version_leaves_the_registry_is_refused(tmp_path):
    settings = Settings.build(mongo_uri="memory:", home=tmp_path, environ={})
    st = open_store(settings)
    version = save(st, settings)
    record = st["models"].find_one({"_id": f"satisfaction:{version}"})
    st["models"].update_one({"_id": record["_id"]}, {"$set": {"version": "../../../evil"}})
    with pytest.raises((ArtifactIntegrityError, ModelError)):
        load_model(st, settings, "satisfaction")


def test_export_then_import_into_another_store_loads_the_same_model(tmp_path):
    a = Settings.build(mongo_uri="memory:", home=tmp_path / "a", environ={})
    b = Settings.build(mongo_uri="memory:", home=tmp_path / "b", environ={})
    src, dst = open_store(a), open_store(b)
    version = save(src, a)
    export_model(src, version[:15], tmp_path / "m.zip")
    entry = import_model(dst, tmp_path / "m.zip")
    assert entry["version"] == version and entry["aliases"] == []
    loaded = load_model(dst, b, "satisfaction", version)
    _, X = fitted()
    np.testing.assert_allclose(loaded.pipeline.predict(X), fitted()[0].predict(X))
    with pytest.raises(ModelError, match="already registered"):
        import_model(dst, tmp_path / "m.zip")


def test_import_refuses_a_changed_blob_or_a_file_that_is_not_an_export(tmp_path):
    a = Settings.build(mongo_uri="memory:", home=tmp_path / "a", environ={})
    src, dst = open_store(a), open_store(Settings.build(mongo_uri="memory:", home=tmp_path / "b", environ={}))
    version = save(src, a)
    export_model(src, version, tmp_path / "m.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    record = json.loads(members["record.json"])
    sha = record["artifacts"][0]["sha256"]
    members[f"blobs/{sha}"] = b"changed"
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(ArtifactIntegrityError, match="does not match its SHA-256; nothing imported"):
        import_model(dst, tmp_path / "bad.zip")
    assert dst["models"].count() == 0
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(InputError, match="is not a custscore model export"):
        import_model(dst, tmp_path / "plain.txt")


def test_blobs_round_trip_and_are_idempotent(store):
    blobs = open_blobs(store)
    data = bytes(range(256)) * 9000  # > 2 chunks
    sha = blobs.put(data)
    assert blobs.put(data) == sha and blobs.get(sha) == data and blobs.exists(sha)
    blobs.delete(sha)
    assert not blobs.exists(sha)
