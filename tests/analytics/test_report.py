"""The EDA report: sections, embedded PNGs, placeholders for missing model data, clear errors."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from custscore.analytics import eda
from custscore.analytics.report import _event_stats, build_report
from custscore.config import Settings
from custscore.errors import InputError
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import UpdateOne, open_store

END = dt.datetime(2026, 6, 30)
NOW = dt.datetime(2026, 7, 1, 12, 0, 0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADINGS = ["Key findings", "Data overview", "Missing values, outliers and preprocessing", "Distributions",
            "Correlations", "Key relationships", "Group statistics", "Segment profiles", "Model leaderboard",
            "SHAP summaries", "Scorer health"]
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _store(tmp_path, n: int, seed: int = 3):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    run_simulation(store, SimulationConfig(n, seed=seed, end=END))
    return store


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report on 800 simulated customers, shared by the read-only checks below."""
    tmp = tmp_path_factory.mktemp("report")
    store = _store(tmp, 800)
    result = build_report(store, tmp / "reports" / "20260701T120000", now=NOW)
    yield store, result, result.path.read_text(encoding="utf-8")
    store.close()


@pytest.mark.slow
def test_report_has_every_section_and_findings(report):
    _, result, page = report
    assert result.path.name == "index.html" and result.path.is_file()
    for heading in HEADINGS:
        assert f">{heading}<" in page, heading
    assert "generated 2026-07-01 12:00:00 UTC" in page
    assert any("800 customers" in f for f in result.findings)
    assert any("IQR" in f for f in result.findings)
    assert any("log1p" in f and "income" in f for f in result.findings)
    assert "IQR rule, values more than 1.5 x IQR beyond the quartiles" in page
    assert "income (USD/year, log scale)" not in page  # labels live in the PNGs, not the HTML


def test_every_embedded_image_is_a_valid_png_also_written_beside_it(report):
    _, result, page = report
    uris = DATA_URI.findall(page)
    assert len(uris) == len(result.figures) >= 8
    for encoded in uris:
        data = base64.b64decode(encoded, validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    for path in result.figures:
        assert path.parent == result.path.parent and path.suffix == ".png"
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert {p.stem for p in result.figures} >= {"distributions", "correlations", "missing_values", "outliers",
                                               "income_vs_satisfaction", "recency_vs_churn",
                                               "tickets_vs_satisfaction", "satisfaction_by_group"}


def test_report_is_self_contained(report):
    _, _, page = report
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_empty_model_and_score_sections_name_the_command_that_fills_them(report):
    _, result, page = report
    for title in ("Segment profiles", "Model leaderboard", "SHAP summaries", "Scorer health"):
        assert result.sections[title] == "empty"
    assert result.sections["Group statistics"] == "ok"
    assert "No models registered yet: run custscore train" in page
    assert "No SHAP summaries yet: run custscore train" in page
    assert "No scores on customers yet: run custscore score" in page
    assert "No segments on customers yet: run custscore train, then run custscore score" in page


def test_no_figures_left_open(report):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_event_stats_fallback_matches_the_pipelines(report):
    from custscore.analytics.pipelines import run_pipeline

    store, _, _ = report
    ds = eda.load_dataset(store)
    ours = _event_stats(ds.events)
    for name in ("monthly_revenue", "top_categories"):
        theirs = run_pipeline(store, name)
        cols = list(ours[name].columns)
        pd.testing.assert_frame_equal(ours[name][cols].reset_index(drop=True),
                                      theirs[cols].reset_index(drop=True), check_dtype=False, atol=0.01)


def test_zero_customers_is_a_clear_input_error(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    with pytest.raises(InputError, match=r"^no customers yet: run custscore simulate or custscore ingest$"):
        build_report(store, tmp_path / "out")
    assert not (tmp_path / "out" / "index.html").exists()


@pytest.mark.slow
def test_sections_fill_once_models_and_scores_exist(tmp_path):
    store = _store(tmp_path, 200, seed=5)
    rng = np.random.default_rng(0)
    ids = [d["_id"] for d in store["customers"].find({}, {"_id": 1})]
    store["customers"].bulk_write([
        UpdateOne({"_id": i}, {"$set": {"score": {
            "churn_probability": float(rng.random()), "risk": "low", "segment": int(k % 3),
            "segment_name": ["loyal", "new", "at risk"][k % 3], "scored_at": NOW, "model_versions": {"churn": 1}}}})
        for k, i in enumerate(ids)])
    # the record's shape as registry.save_model writes it: the trainer's keys live under "extra"
    store["models"].insert_one({"_id": "churn:1", "task": "churn", "version": 1, "aliases": ["production"],
                                "created_at": NOW, "metrics": {"roc_auc": 0.81, "note": "text is skipped"},
                                "extra": {"winner": "linear", "shap_importance": {"recency_days": 0.4, "orders": 0.2,
                                                                                  "age": 0.05},
                                          "leaderboard": [{"model": "linear", "val_roc_auc": 0.81}]}})
    models_dir = tmp_path / "models"
    (models_dir / "churn").mkdir(parents=True)
    (models_dir / "churn" / "shap_beeswarm.png").write_bytes(_tiny_png())
    result = build_report(store, tmp_path / "out", models_dir=models_dir, now=NOW)
    page = result.path.read_text(encoding="utf-8")
    assert {result.sections[t] for t in ("Segment profiles", "Model leaderboard", "SHAP summaries", "Scorer health",
                                         "Group statistics")} == {"ok"}
    assert "roc_auc" in page and "production" in page and "shap_beeswarm.png" in page
    assert "200 of 200 (100.0%)" in page
    assert "churn v1 candidates" in page and "val_roc_auc" in page  # the leaderboard read from extra
    assert {"segment_profiles", "score_distribution", "shap_churn_v1"} <= {p.stem for p in result.figures}
    assert len(DATA_URI.findall(page)) == len(result.figures) + 1  # + the embedded artifact PNG


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buf, format="PNG")
    return buf.getvalue()
