"""Drift of recently scored customers against a training reference: the PSI table ``custscore monitor`` and the
report both show.

It reads ``predictions`` records (the latest per customer), keeps those of the
reference's population, and bins them as :mod:`custscore.models.drift` binned
the reference, with a noise floor below which a PSI is only sampling noise. It
sits in ``models`` (beside the reference it reads) so that the scorer's monitor
and the analytics report call one function without depending on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from custscore.errors import InputError
from custscore.models.drift import EVERYONE, in_population, psi_row
from custscore.store.base import Store
from custscore.store.schema import PREDICTIONS

MIN_RECENT = 100
REPORT_COLUMNS = ["kind", "name", "psi", "band", "bucket", "ref_share", "now_share", "noise_floor"]
NOISE_QUANTILE = 0.99
SEVERITY = ("stable", "moderate", "shift")


def noise_floor(profile: Mapping, n_reference: int | None, n_recent: int) -> float:
    """The PSI two samples of these sizes reach by chance alone in 1% of draws, with no drift at all.

    Under no drift, PSI * n*m/(n+m) is approximately chi-square with (buckets - 1) degrees of freedom, so small
    references or samples give large PSIs from noise (10 buckets, 120 vs 140 rows: 0.33). A PSI at or below
    this floor is reported as stable whatever its size.
    """
    if not n_reference or not n_recent:
        return 0.0
    from scipy.stats import chi2

    buckets = len(profile.get("fractions", [])) + (2 if profile.get("kind") == "cat" else 1)
    return float(chi2.ppf(NOISE_QUANTILE, max(buckets - 1, 1)) * (1.0 / n_reference + 1.0 / n_recent))


def recent_predictions(store: Store, since: Any = None, limit: int = 5000, as_of: Any = None) -> list[dict]:
    """The latest prediction record of each recently scored customer (newest first); only those as of ``as_of``."""
    spec: dict = {"scored_at": {"$gte": since}} if since is not None else {}
    if as_of is not None:
        spec["as_of"] = {"$lte": as_of}
    latest: dict[Any, dict] = {}
    for record in store.collection(PREDICTIONS).find(spec, sort=[("scored_at", -1)], limit=limit):
        latest.setdefault(record.get("customer_id", record.get("_id")), record)
    return list(latest.values())


def psi_table(records: list[dict], reference: Mapping) -> pd.DataFrame:
    """PSI per feature and prediction of these prediction records against ``reference`` (worst first)."""
    features = pd.DataFrame.from_records([r.get("features") or {} for r in records], index=range(len(records)))
    rows = []
    n_ref = reference.get("n")
    for name, profile in reference.get("features", {}).items():
        values = features[name] if name in features.columns else pd.Series([None] * len(records), dtype=object)
        rows.append({**psi_row("feature", name, profile, values),
                     "noise_floor": noise_floor(profile, n_ref, len(records))})
    for name, profile in reference.get("predictions", {}).items():
        values = pd.Series([r.get(name, r.get(f"{name}_probability")) for r in records], dtype=object)
        if values.isna().all():  # the scorer does not write this prediction: nothing to compare, not a shift
            continue
        rows.append({**psi_row("prediction", name, profile, values),
                     "noise_floor": noise_floor(profile, n_ref, len(records))})
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    frame.loc[frame["psi"] <= frame["noise_floor"], "band"] = "stable"  # within what sampling noise gives
    return frame.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def too_few_message(n: int, since: Any, min_recent: int) -> str:
    """Why drift is not computed for ``n`` scored customers, and how to get enough."""
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
        raise InputError(too_few_message(len(records), since, min_recent))
    frame = psi_table(records, reference)
    frame.attrs["n_recent"] = len(records)
    return frame
