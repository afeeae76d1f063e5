"""Drift monitoring: population stability index of recent scored customers against the training reference.

The trainer keeps a :func:`reference_profile` of its training frame (and of its
predictions) in the model manifest. :func:`monitor` reads recent ``predictions``
records, bins their features and predictions exactly as the reference was
binned, and reports PSI = sum((actual - expected) * ln(actual / expected)) per
column with the usual bands: below 0.1 stable, below 0.25 moderate, above that a
shift worth an alert (``exit_code`` 1, for cron).

Like is compared with like: a reference records its population (buyers, new
customers who never bought, or everyone), and only scored customers of that
population are binned against it. A new sign-up is not drift in the buyers'
recency.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from custscore.clock import now
from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.schema import MONITORING, PREDICTIONS

log = logging.getLogger(__name__)

MODERATE, SHIFT = 0.1, 0.25
MIN_RECENT = 100
MAX_CATEGORIES = 20  # rarer categories share the "other" bucket
REPORT_COLUMNS = ["kind", "name", "psi", "band", "bucket", "ref_share", "now_share"]
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
    edges = [f"{e:.4g}" for e in profile["edges"]]
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


def _row(kind: str, name: str, profile: Mapping, values: pd.Series) -> dict:
    expected, actual = _expected(profile), _shares(profile, values)
    value = psi(expected, actual)
    e, a = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    worst = int(np.argmax((a - e) * np.log(a / e)))
    return {"kind": kind, "name": name, "psi": value, "band": band(value), "bucket": _labels(profile)[worst],
            "ref_share": float(expected[worst]), "now_share": float(actual[worst])}


def recent_predictions(store: Store, since: Any = None, limit: int = 5000, as_of: Any = None) -> list[dict]:
    """The latest prediction record of each recently scored customer (newest first); only those as of ``as_of``."""
    spec: dict = {"scored_at": {"$gte": since}} if since is not None else {}
    if as_of is not None:
        spec["as_of"] = {"$lte": as_of}
    latest: dict[Any, dict] = {}
    for record in store.collection(PREDICTIONS).find(spec, sort=[("scored_at", -1)], limit=limit):
        latest.setdefault(record.get("customer_id", record.get("_id")), record)
    return list(latest.values())


def _report(records: list[dict], reference: Mapping) -> pd.DataFrame:
    features = pd.DataFrame.from_records([r.get("features") or {} for r in records], index=range(len(records)))
    rows = []
    for name, profile in reference.get("features", {}).items():
        values = features[name] if name in features.columns else pd.Series([None] * len(records), dtype=object)
        rows.append(_row("feature", name, profile, values))
    for name, profile in reference.get("predictions", {}).items():
        values = pd.Series([r.get(name, r.get(f"{name}_probability")) for r in records], dtype=object)
        if values.isna().all():  # the scorer does not write this prediction: nothing to compare, not a shift
            continue
        rows.append(_row("prediction", name, profile, values))
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    return frame.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def _too_few(n: int, since: Any, min_recent: int) -> str:
    window = f" since {since}" if since is not None else ""
    return (f"only {n} scored customers{window}; drift needs at least {min_recent} for a stable PSI - "
            "let the scorer run longer or widen --since")


def drift_report(store: Store, reference: Mapping, since: Any = None, limit: int = 5000,
                 min_recent: int = MIN_RECENT) -> pd.DataFrame:
    """PSI per feature and per prediction of recently scored customers against one reference.

    Parameters
    ----------
    store : Store
        Where the ``predictions`` records are.
    reference : dict
        A :func:`reference_profile`.
    since : datetime, optional
        Only records scored at or after this time; default the latest ``limit``.
    limit : int
        At most this many records are read (the latest per customer is used).
    min_recent : int
        Fewer scored customers than this raise instead of giving a noisy PSI.

    Returns
    -------
    pandas.DataFrame
        Columns kind, name, psi, band, bucket (the bucket that moved most),
        ref_share, now_share; worst first. ``attrs["n_recent"]`` is the sample size.
    """
    records = recent_predictions(store, since, limit)
    if records:  # like with like: only the scored customers of the reference's population
        features = pd.DataFrame.from_records([r.get("features") or {} for r in records], index=range(len(records)))
        mask = in_population(features, reference.get("population", EVERYONE))
        records = [r for r, keep in zip(records, mask, strict=True) if keep]
    if len(records) < min_recent:
        raise InputError(_too_few(len(records), since, min_recent))
    frame = _report(records, reference)
    frame.attrs["n_recent"] = len(records)
    return frame


@dataclass
class MonitorResult:
    """What a monitoring run found: the PSI table, the worst band, the sample size and the stored summary."""

    frame: pd.DataFrame
    worst_band: str  # "stable", "moderate", "shift", or "insufficient" (too few recent customers)
    n_recent: int
    summary_doc: dict = field(default_factory=dict)
    message: str = ""


def monitor(store: Store, reference_by_task: Mapping[str, Mapping], since: Any = None, limit: int = 5000,
            min_recent: int = MIN_RECENT, as_of: Any = None) -> MonitorResult:
    """Drift of every task's features and predictions, stored as a summary in ``monitoring``.

    Parameters
    ----------
    store : Store
        The store with ``predictions``; the summary goes to its ``monitoring`` collection.
    reference_by_task : dict
        Task name -> :func:`reference_profile` (from the production model's manifest).
    since, limit, min_recent
        As in :func:`drift_report`.
    as_of : datetime, optional
        Only scores computed as of this time or earlier (``--as-of``); default all.

    Returns
    -------
    MonitorResult
        A feature shared by several tasks appears once, with its worst PSI. With too
        few recent customers the frame is empty, ``worst_band`` is "insufficient" and
        ``message`` says what to do.
    """
    records = recent_predictions(store, since, limit, as_of)
    n = len(records)
    if n < min_recent:
        frame = pd.DataFrame(columns=["task", *REPORT_COLUMNS])
        worst, message = "insufficient", _too_few(n, since, min_recent)
    else:
        parts, skipped = _compare_populations(records, reference_by_task, min_recent)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["task", *REPORT_COLUMNS])
        frame = frame[["task", *REPORT_COLUMNS]].sort_values("psi", ascending=False, kind="stable")
        features = frame["kind"] == "feature"
        frame = pd.concat([frame[features].drop_duplicates("name"), frame[~features]])
        frame = frame.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
        worst = band(float(frame["psi"].max())) if len(frame) else "stable"
        message = (f"worst: {frame.loc[0, 'name']} PSI {frame.loc[0, 'psi']:.3f} ({worst}) over {n} recent customers"
                   if len(frame) else f"nothing to compare over {n} recent customers")
        message += "".join(f"; {note}" for note in skipped)
    summary = _store_summary(store, frame, worst, n, since, message)
    log.info("monitor: %s", message)
    return MonitorResult(frame, worst, n, summary, message)


def _compare_populations(records: list[dict], reference_by_task: Mapping[str, Mapping],
                         min_recent: int) -> tuple[list[pd.DataFrame], list[str]]:
    """Each task's report over the records of its reference's population; notes for populations too small to compare."""
    features = pd.DataFrame.from_records([r.get("features") or {} for r in records], index=range(len(records)))
    parts, skipped = [], []
    for task, ref in reference_by_task.items():
        population = ref.get("population", EVERYONE)
        mask = in_population(features, population)
        chosen = [r for r, keep in zip(records, mask, strict=True) if keep]
        if len(chosen) < min_recent:
            skipped.append(f"{task} not compared: {len(chosen)} recent {POPULATION_WORDS.get(population, population)} "
                           f"scored, fewer than {min_recent}")
            continue
        parts.append(_report(chosen, ref).assign(task=task))
    return parts, skipped


def _store_summary(store: Store, frame: pd.DataFrame, worst: str, n: int, since: Any, message: str) -> dict:
    stamp = now()
    rows = [{"task": r.task, "kind": r.kind, "name": r.name, "psi": round(float(r.psi), 6), "band": r.band}
            for r in frame.itertuples(index=False)]
    doc = {"_id": f"monitor:{stamp.isoformat(timespec='milliseconds')}", "created_at": stamp, "since": since,
           "n_recent": n, "worst_band": worst, "message": message, "rows": rows}
    store.collection(MONITORING).replace_one({"_id": doc["_id"]}, doc, upsert=True)
    return doc


def exit_code(result: MonitorResult) -> int:
    """0 when stable, moderate or too little data; 1 past the 0.25 alert band (for cron)."""
    return 1 if result.worst_band == "shift" else 0


def production_references(store: Store) -> dict[str, dict]:
    """task -> the training reference profile stored with its production model."""
    out = {}
    for doc in store["models"].find({"aliases": "production"}):
        reference = (doc.get("extra") or {}).get("reference")
        if reference:
            out[doc["task"]] = reference
    return out
