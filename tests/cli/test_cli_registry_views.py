"""`custscore models`, `models show` and `leaderboard`: full versions, the family, winners marked, nothing cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from custscore.cli.leaderboards import leaderboard_table, number
from custscore.config import Settings
from custscore.models import registry
from custscore.store import open_store
from tests.cli.test_cli_foundation import assert_one_red_line, cli

BOARD = [
    {"model": "linear", "cv_mean": 0.8073, "cv_std": 0.094, "val_roc_auc": 0.90927, "test_roc_auc": 0.95465,
     "val_pr_auc": 0.7246, "test_f1": 0.6667, "test_brier_raw": 0.1367, "test_brier": 0.0576, "test_ece_raw": 0.23,
     "test_ece": 0.0859, "fit_s": 0.234, "predict_ms_1k": 350.869, "size_kb": 3480.4, "tradeoff": "fast"},
    {"model": "gboost", "cv_mean": 0.79, "cv_std": 0.05, "val_roc_auc": 0.88, "test_roc_auc": 0.91, "val_pr_auc": 0.7,
     "test_f1": 0.6, "test_brier_raw": 0.14, "test_brier": 0.06, "test_ece_raw": 0.2, "test_ece": 0.09,
     "fit_s": 18.43, "predict_ms_1k": 12.5, "size_kb": 18_400.0, "tradeoff": "strong"},
]


@pytest.fixture
def home(tmp_path):
    settings = Settings.build(home=tmp_path, environ={})
    store = open_store(settings)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"orders_total": rng.poisson(5, 200).astype(float), "recency_days": rng.gamma(2, 20, 200)})
    y = (X["recency_days"] > 40).astype(int)
    pipe = Pipeline([("prep", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    versions = []
    for _ in range(2):
        versions.append(registry.save_model(
            store, settings, "churn", pipe, kind="classification",
            features=[{"name": "orders_total"}, {"name": "recency_days"}],
            metrics={"val_roc_auc": 0.90927, "test_roc_auc": 0.95465}, threshold=0.4231,
            training_fingerprint="f", extra={"winner": "linear", "leaderboard": BOARD, "as_of": "2026-01-01"}))
    store.close()
    return tmp_path, versions


def test_models_shows_full_versions_family_and_val_test_columns(home):
    path, versions = home
    result = cli(path, "models")
    assert result.exit_code == 0, result.output
    for v in versions:
        assert v in result.output  # never cut
    row = next(ln for ln in result.output.splitlines() if versions[1] in ln)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells == ["churn", versions[1], "linear", "yes", "ROC-AUC", "0.909", "0.955", "0.423", cells[-1]]
    assert cells[-1].endswith(" KB") and "…" not in result.output


def test_a_prefix_or_latest_is_accepted_where_a_version_is_taken(home):
    path, versions = home
    older, newer = versions
    assert cli(path, "promote", "churn", older[:-2]).output.strip() == f"churn: production is now {older}"
    assert cli(path, "promote", "churn", "latest").output.strip() == f"churn: production is now {newer}"
    shown = cli(path, "models", "show", newer[:-1])
    assert shown.exit_code == 0 and f"churn {newer}" in shown.output
    assert "family" in shown.output and "linear" in shown.output and "0.423" in shown.output
    assert "features (2): orders_total, recency_days" in shown.output and "manifest sha256:" in shown.output
    facts = {c[0]: c[1] for c in ([x.strip() for x in ln.split("│")[1:-1]] for ln in shown.output.splitlines()
                                   if ln.count("│") == 3)}
    assert facts["trained as of"] == "2026-01-01 00:00" and facts["created"].count(":") == 1  # to the minute
    ambiguous = cli(path, "promote", "churn", newer[:8])
    assert_one_red_line(ambiguous, f"version prefix '{newer[:8]}' matches 2 churn models")


def test_leaderboard_reprints_the_stored_board_with_the_winner_marked(home):
    path, versions = home
    result = cli(path, "leaderboard", "--task", "churn")
    assert result.exit_code == 0, result.output
    assert "linear (winner)" in result.output and "gboost (winner)" not in result.output
    assert f"churn {versions[1]} (production)" in result.output
    assert "…" not in result.output
    csv = cli(path, "leaderboard", "--task", "churn", "--csv")
    lines = csv.output.strip().splitlines()
    assert lines[0].startswith("task,model,cv_mean") and lines[0].endswith(",winner")
    assert lines[1].startswith("churn,linear,") and lines[1].endswith(",True") and lines[2].endswith(",False")


def test_leaderboard_tables_choose_columns_that_fit_and_never_cut_a_cell():
    board = pd.DataFrame(BOARD)
    table, hidden = leaderboard_table(board, "churn", "classification", "linear", width=120)
    headers = [c.header for c in table.columns]
    assert headers[0] == "model" and hidden and set(hidden).isdisjoint(headers)
    assert all(c.no_wrap for c in table.columns)
    wide, none_hidden = leaderboard_table(board, "churn", "classification", "linear", wide=True)
    assert none_hidden == [] and len(wide.columns) == len(table.columns) + len(hidden)
    seg, _ = leaderboard_table(pd.DataFrame([{"model": "K-Means (k=4)", "silhouette": 0.29}]), "segment", "segment",
                               "decision tree over K-Means")
    assert "CV" not in seg.title and "test is reported" not in seg.title


def test_one_number_style():
    assert number("size_kb", 3480.4) == "3,480"
    assert number("val_roc_auc", 0.90927) == "0.909"
    assert number("davies_bouldin", 18.4123) == "18.412"
    assert number("predict_ms_1k", 350.869) == "351" and number("fit_s", 0.234) == "0.23"
    assert number("k", 4) == "4" and number("rows", 12919) == "12,919"
    assert number("test_f1", None) == "-" and number("test_f1", float("nan")) == "-"


def test_status_shows_aliases_and_times_as_words_not_python(home):
    path, versions = home
    result = cli(path, "status")
    assert result.exit_code == 0, result.output
    row = next(ln for ln in result.output.splitlines() if versions[1] in ln)
    assert "['production']" not in result.output and "production" in row
    created = row.split("│")[4].strip()
    assert len(created) == len("2026-12-02 04:13") and "." not in created
    # the store's location on one line of its own, never wrapped over the narrow table as its title
    assert result.output.splitlines()[0] == f"custscore store (embedded: {path / 'store.sqlite'})"
