"""Reference rows for a leaderboard: the naive baseline and, on simulated data, the oracle from ``_truth``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from custscore.models import evaluate, labels


def oracle_scores(data, index) -> dict[str, pd.Series]:
    """Oracle predictions for the given customers: name -> Series (empty when the data is not simulated)."""
    truth = data.truth
    if truth is None or truth.reindex(index).isna().all().all():
        return {}
    t = truth.reindex(index)
    if data.task == "churn":
        recency = data.X.loc[index, "recency_days"]
        return {"oracle (true parameters)": labels.churn_oracle(t, recency),
                "oracle (also knows who already left)": labels.churn_oracle_omniscient(t, data.as_of)}
    if data.task == "satisfaction":
        return {"oracle (noise-free satisfaction)": t["satisfaction"].astype(float)}
    return {}


def oracle_rows(data, train_index, y_train, test_index, y_test) -> list[dict]:
    """Leaderboard rows for the baseline and the oracles, scored on the test set only."""
    kind = data.kind
    metric = evaluate.PRIMARY_METRIC[kind]
    rows = []
    if kind == "regression":
        base = evaluate.regression_metrics(y_test, np.full(len(y_test), float(y_train.mean())))
        rows.append({"model": "baseline (training mean)", f"test_{metric}": base[metric], "test_r2": base["r2"],
                     "tradeoff": "predicts the average for everyone"})
    else:
        prevalence = float(y_train.mean())
        base = evaluate.classification_metrics(y_test, np.full(len(y_test), prevalence), 0.5)
        rows.append({"model": "baseline (prevalence)", f"test_{metric}": base[metric], "test_brier": base["brier"],
                     "tradeoff": "the same probability for everyone"})
    for name, scores in oracle_scores(data, test_index).items():
        scores = scores.reindex(test_index)
        if kind == "regression":
            m = evaluate.regression_metrics(y_test, scores.to_numpy(float))
            rows.append({"model": name, f"test_{metric}": m[metric], "test_r2": m["r2"],
                         "tradeoff": "best achievable: the simulator's truth, not available in real life"})
        else:
            m = evaluate.classification_metrics(y_test, scores.to_numpy(float), 0.5)
            rows.append({"model": name, f"test_{metric}": m[metric], "test_brier": m["brier"],
                         "tradeoff": "simulator truth; not available in real life"})
    return rows
