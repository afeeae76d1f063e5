"""Benchmark: does the tuner keep its wall-clock budget, and how fast does the permutation explainer run?

Usage::

    python bench/tuning_budget.py

The tests check the budget rule with a deterministic clock (tests/models/test_tuning.py) and bound the
explainer by model calls (tests/models/test_explain.py); this script measures the real seconds, as ratios
against one default fit measured in the same process, so a loaded machine shifts both sides alike:

* tune(budget=B): elapsed / B, and the overshoot past B in units of one default fit (the docstring promises
  "within about the budget plus one fit");
* the voting ensemble's permutation explainer on 100 rows: seconds per row relative to one predict_proba call.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from custscore.models.explain import make_explainer
from custscore.models.tuning import tune
from custscore.models.zoo import make_candidates, make_preprocessor

NUM = [f"x{i}" for i in range(6)]
CAT = ["region"]


def frame(kind: str, n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    maker = make_classification if kind == "classification" else make_regression
    X, y = maker(n, 6, n_informative=4, random_state=seed)
    df = pd.DataFrame(X, columns=NUM)
    df["region"] = pd.Series(rng.choice(["north", "south", "east"], n), dtype=object)
    return df, y


def bench_tuning() -> None:
    for kind, family, budget in (("regression", "tree", 3.0), ("classification", "forest", 6.0)):
        X, y = frame(kind)
        pipe = make_candidates(kind, NUM, CAT, families=[family])[family]
        t0 = time.perf_counter()
        clone(pipe).fit(X, y)
        one_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, _, summary = tune(family, pipe, X, y, kind, budget_seconds=budget, cv=3)
        elapsed = time.perf_counter() - t0
        print(f"tune {family:<7} budget {budget:.0f}s: elapsed/budget {elapsed / budget:.2f}, "
              f"overshoot {(elapsed - budget) / one_fit:+.1f} default fits ({one_fit:.2f}s each); {summary}")


def bench_explainer() -> None:
    X, y = frame("classification", n=1000)
    pipe = make_candidates("classification", NUM, CAT, families=["linear"])["linear"]
    vote = VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                             ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))], voting="soft")
    pipe = clone(pipe).set_params(model=vote) if "model" in pipe.named_steps else pipe
    pipe.steps[0] = ("prep", make_preprocessor(NUM, CAT))
    pipe.fit(X, y)
    t0 = time.perf_counter()
    pipe.predict_proba(X.iloc[:100])
    one_call = time.perf_counter() - t0
    explainer = make_explainer(pipe, X, "classification", seed=0)
    t0 = time.perf_counter()
    explainer.explain(X.iloc[:100])
    elapsed = time.perf_counter() - t0
    print(f"permutation explainer, 100 rows: {elapsed:.2f}s = {elapsed / one_call:,.0f} x one predict_proba of 100 rows")


if __name__ == "__main__":
    bench_tuning()
    bench_explainer()
