"""Drift references and the population stability index (PSI), below both the trainer and the monitor.

The trainer keeps a :func:`reference_profile` of its training frame (and of its predictions) in the model
manifest; the scorer's monitor (:mod:`custscore.scorer.monitor`) bins recent scored customers exactly as the
reference was binned and compares the shares with :func:`psi`. Both sides use this module, so ``models`` never
imports ``scorer``.

Like is compared with like: a reference records its population (buyers, new customers who never bought, or
everyone), and only scored customers of that population are binned against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from custscore.errors import InputError

MODERATE, SHIFT = 0.1, 0.25
MAX_CATEGORIES = 20  # rarer categories share the "other" bucket
# Who a reference describes. Buyers and customers who never bought are populations of their own (the churn model
# learns from buyers, the first-purchase model from the others), so each reference is compared with its own.
BUYERS, NEW, EVERYONE = "buyers", "new", "all"
POPULATION_WORDS = {BUYERS: "buyers", NEW: "new customers (no purchase yet)", EVERYONE: "customers"}


def band(value: float) -> str:
    """The PSI band: "stable" < 0.1 <= "moderate" < 0.25 <= "shift"."""
    return "stable" if value < MODERATE else "moderate" if value < SHIFT else "shift"


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _categories(values: pd.Series) -> list[str | None]:
    """Values as category text, missing as None."""
    return [None if pd.api.types.is_scalar(v) and pd.isna(v) else str(v) for v in values]


def _profile(values: pd.Series, bins: int) -> dict:
    if _is_numeric(values):
        present = values.dropna().to_numpy(dtype=float)
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))[1:-1]) if present.size else np.array([])
        profile = {"kind": "num", "edges": [float(e) for e in edges]}
    else:
        counts = pd.Series(_categories(values), dtype=object).value_counts()
        profile = {"kind": "cat", "categories": [str(c) for c in counts.index[:MAX_CATEGORIES]]}
    shares = _shares(profile, values)
    profile["fractions"] = [float(s) for s in shares[: _n_buckets(profile)]]
    if profile["kind"] == "cat":
        profile["other"] = float(shares[-2])
    profile["missing"] = float(shares[-1])
    return profile


def _n_buckets(profile: dict) -> int:
    return len(profile["edges"]) + 1 if profile["kind"] == "num" else len(profile["categories"])


def _expected(profile: Mapping) -> np.ndarray:
    """The reference shares of every bucket, missing last (and "other" before it for categories)."""
    tail = [profile["other"], profile["missing"]] if profile["kind"] == "cat" else [profile["missing"]]
    return np.array([*profile["fractions"], *tail], dtype=float)


def _shares(profile: Mapping, values: pd.Series) -> np.ndarray:
    """Shares of ``values`` in the profile's buckets, in the order of :func:`_expected`."""
    n = len(values)
    if profile["kind"] == "num":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        present = numbers[~np.isnan(numbers)]
        # bins are (-inf, e0], (e0, e1], ..., (e_last, inf): ties with an edge go left, as in training
        counts = np.bincount(np.searchsorted(profile["edges"], present, side="left"), minlength=_n_buckets(profile))
        counts = np.append(counts, n - present.size)
    else:
        cats = _categories(values)
        known = {c: i for i, c in enumerate(profile["categories"])}
        counts = np.zeros(len(known) + 2)
        for value in cats:
            counts[-1 if value is None else known.get(value, len(known))] += 1
    return counts / max(n, 1)


def _labels(profile: Mapping) -> list[str]:
    if profile["kind"] == "cat":
        return [*profile["categories"], "other", "missing"]
    # 24,500 rather than 2.45e+04: thousands separators past 1,000, four significant figures below
    edges = [f"{e:,.0f}" if abs(e) >= 1000 else f"{e:.4g}" for e in profile["edges"]]
    if not edges:
        return ["all values", "missing"]
    inner = [f"{lo} .. {hi}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return [f"<= {edges[0]}", *inner, f"> {edges[-1]}", "missing"]


def _never_bought(features: pd.DataFrame) -> pd.Series | None:
    """True for rows without a purchase (``orders_total`` 0, the rule of models.population); None without the column."""
    if "orders_total" not in features.columns:
        return None
    return pd.to_numeric(features["orders_total"], errors="coerce").fillna(0.0) <= 0


def population_of(frame: pd.DataFrame) -> str:
    """"buyers" when every row has a purchase, "new" when none has, else "all" (also without ``orders_total``)."""
    never = _never_bought(frame)
    if never is None or not len(never):
        return EVERYONE
    return NEW if bool(never.all()) else BUYERS if not bool(never.any()) else EVERYONE


def in_population(features: pd.DataFrame, population: str) -> np.ndarray:
    """Boolean mask of the rows (prediction records' features) that belong to ``population``."""
    never = _never_bought(features)
    if population == EVERYONE or never is None:
        return np.ones(len(features), dtype=bool)
    return (never if population == NEW else ~never).to_numpy(dtype=bool)


def reference_profile(frame: pd.DataFrame, predictions: Mapping[str, Any] | None = None, bins: int = 10,
                      population: str | None = None) -> dict:
    """Bin edges and shares of the training data, to compare later batches against (JSON-serialisable).

    Parameters
    ----------
    frame : pandas.DataFrame
        The training feature frame: numeric columns (float, NaN missing) and
        categorical columns (text, None missing).
    predictions : dict of str to array, optional
        The model's predictions on that frame, e.g. ``{"churn_probability": p}``.
    bins : int
        Number of quantile bins for numeric columns (fewer when values tie).
    population : {"buyers", "new", "all"}, optional
        Who the frame describes; by default read from it (:func:`population_of`). :func:`monitor`
        compares the reference only with scored customers of the same population.

    Returns
    -------
    dict
        ``{"bins", "n", "population", "features": {name: profile}, "predictions": {name: profile}}``;
        a numeric profile is ``{"kind": "num", "edges", "fractions", "missing"}`` with
        inner quantile edges, a categorical one ``{"kind": "cat", "categories",
        "fractions", "other", "missing"}``. Shares are of all rows, so each profile sums to 1.
    """
    if bins < 2:
        raise InputError(f"bins must be at least 2, got {bins}")
    if len(frame) == 0:
        raise InputError("the training frame has no rows; a drift reference needs training data")
    if population is not None and population not in POPULATION_WORDS:
        raise InputError(f"population {population!r} is not known; use one of {', '.join(POPULATION_WORDS)}")
    preds = {name: pd.Series(np.asarray(values)) for name, values in (predictions or {}).items()}
    return {
        "bins": bins,
        "n": len(frame),
        "population": population or population_of(frame),
        "features": {str(name): _profile(frame[name], bins) for name in frame.columns},
        "predictions": {name: _profile(values, bins) for name, values in preds.items()},
    }


def psi(expected_fractions: Sequence[float], actual_fractions: Sequence[float], eps: float = 1e-4) -> float:
    """Population stability index, sum((a - e) * ln(a / e)), with empty buckets counted as ``eps``."""
    e = np.asarray(expected_fractions, dtype=float)
    a = np.asarray(actual_fractions, dtype=float)
    if e.shape != a.shape:
        raise InputError(f"PSI needs the same buckets on both sides, got {e.size} expected and {a.size} actual shares")
    e, a = np.clip(e, eps, None), np.clip(a, eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_row(kind: str, name: str, profile: Mapping, values: pd.Series) -> dict:
    """One PSI report row: the column's PSI, its band and the bucket that moved most, with both shares."""
    expected, actual = _expected(profile), _shares(profile, values)
    value = psi(expected, actual)
    e, a = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    worst = int(np.argmax((a - e) * np.log(a / e)))
    return {"kind": kind, "name": name, "psi": value, "band": band(value), "bucket": _labels(profile)[worst],
            "ref_share": float(expected[worst]), "now_share": float(actual[worst])}
