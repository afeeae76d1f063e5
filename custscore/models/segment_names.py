"""Segment names from an RFM grid relative to the population: champions, loyal, new, promising, at risk, ...

Each segment is placed on the classic recency / frequency / monetary grid by
where its *median* customer falls in the whole population: a percentile in
[0, 1] per axis, recency flipped so that 1 means "bought most recently". The
grid then gives the industry's names:

============  ===========================================================
name          profile (segment median against the population median)
============  ===========================================================
champions     recency better, frequency and monetary above (clearly recent)
loyal         recency better, frequency above
new           recency better, frequency below, tenure in the bottom quarter
promising     recency better, frequency below, tenure above the bottom quarter
at risk       recency worse, frequency or monetary above
can't lose    recency worse, frequency and monetary both well above
hibernating   recency worse, frequency and monetary below
lost          recency worst (bottom quarter), frequency and monetary below
no purchase   most of the segment has never bought (no recency at all)
============  ===========================================================

:data:`NAME_PROFILES` states these conditions as data so tests (and anyone
reading a segment table) can check that a name never contradicts its profile.
Customers who never bought sort below every buyer on recency, frequency and
monetary, which is what a business means by "worst".
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

RECENCY = ("recency_days",)
FREQUENCY = ("orders_365d", "orders_total", "orders_per_month", "frequency_365d")
MONETARY = ("spend_per_month", "spend_total", "spend_mean", "monetary_sum", "monetary_mean")
TENURE = ("tenure_days",)
NEVER_BOUGHT = "no purchase yet"
# A segment is "champions" rather than "loyal" when its median customer is in the top 40% on recency.
CHAMPION_RECENCY = 0.6
CANT_LOSE_VALUE = 0.7
QUARTER = 0.25

# name -> (axis, relation) pairs a segment's percentiles satisfy. "above" = > 0.5, "below" = < 0.5,
# "not below" = >= 0.5, "not above" = <= 0.5, "top 40%" = >= 0.6, "top 30%" = >= 0.7, "bottom quarter" < 0.25
# (and "not bottom quarter").
# Recency is oriented so that 1 = most recent ("above" = bought more recently than the median customer);
# "value" is the better of frequency and monetary.
NAME_PROFILES: dict[str, list[tuple[str, str]]] = {
    "champions": [("recency", "top 40%"), ("frequency", "above"), ("monetary", "above")],
    "loyal": [("recency", "not below"), ("frequency", "above")],
    "new": [("recency", "not below"), ("frequency", "not above"), ("tenure", "bottom quarter")],
    "promising": [("recency", "not below"), ("frequency", "not above"), ("tenure", "not bottom quarter")],
    "at risk": [("recency", "below"), ("value", "above")],
    "can't lose": [("recency", "below"), ("frequency", "top 30%"), ("monetary", "top 30%")],
    "hibernating": [("recency", "below"), ("frequency", "not above"), ("monetary", "not above")],
    "lost": [("recency", "bottom quarter"), ("frequency", "not above"), ("monetary", "not above")],
    NEVER_BOUGHT: [("frequency", "not above")],
}
_RELATIONS = {"above": lambda v: v > 0.5, "below": lambda v: v < 0.5, "not below": lambda v: v >= 0.5,
              "not above": lambda v: v <= 0.5, "top 40%": lambda v: v >= CHAMPION_RECENCY,
              "top 30%": lambda v: v >= CANT_LOSE_VALUE, "bottom quarter": lambda v: v < QUARTER,
              "not bottom quarter": lambda v: v >= QUARTER}
RFM_NAMES = [n for n in NAME_PROFILES if n != NEVER_BOUGHT]


def _column(X: pd.DataFrame, candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in X.columns and pd.api.types.is_numeric_dtype(X[c])
                 and X[c].notna().any()), None)


def _axis_values(X: pd.DataFrame) -> dict[str, pd.Series]:
    """Per customer, the value on each axis oriented so that bigger = better (recency negated)."""
    out = {}
    never = None
    col = _column(X, FREQUENCY)
    if col is not None:
        out["frequency"] = X[col].astype(float).fillna(0.0)
        never = out["frequency"] <= 0
    if "orders_total" in X.columns:
        never = X["orders_total"].astype(float).fillna(0.0) <= 0
    col = _column(X, RECENCY)
    if col is not None:
        days = X[col].astype(float)
        never = days.isna()  # no last purchase at all (a year without orders is not "never")
        # Never bought = later than the latest buyer: worst recency.
        worst = float(days.max()) + 1.0 if days.notna().any() else 1.0
        out["recency"] = -days.fillna(worst)
    col = _column(X, MONETARY)
    if col is not None:
        out["monetary"] = X[col].astype(float).fillna(0.0)
    col = _column(X, TENURE)
    if col is not None:
        out["tenure"] = X[col].astype(float).fillna(float(X[col].median()) if X[col].notna().any() else 0.0)
    if never is not None:
        out["_never"] = never.astype(float)
    return out


def segment_percentiles(X: pd.DataFrame, labels) -> pd.DataFrame:
    """Where each segment's median customer sits in the population, per RFM axis (0 = worst, 1 = best).

    Parameters
    ----------
    X : DataFrame
        Feature frame (see :mod:`custscore.models.features`); uses recency_days, a frequency column
        (orders_365d first), a monetary column (spend_per_month first) and tenure_days when present.
    labels : array-like
        Segment id of each row of ``X``.

    Returns
    -------
    DataFrame
        Indexed by segment id; columns recency, frequency, monetary, tenure (those available) holding the
        population percentile (mid-rank, so ties sit in the middle) of the segment's median, and
        ``never_bought`` (share of the segment with no purchase).
    """
    labels = np.asarray(labels)
    axes = _axis_values(X)
    rows = {}
    for axis, values in axes.items():
        if axis == "_never":
            continue
        v = values.to_numpy(dtype=float)
        sorted_v = np.sort(v)
        meds = pd.Series(v).groupby(labels).median()
        below = np.searchsorted(sorted_v, meds.to_numpy(), side="left")
        upto = np.searchsorted(sorted_v, meds.to_numpy(), side="right")
        rows[axis] = pd.Series((below + upto) / 2.0 / len(v), index=meds.index)
    out = pd.DataFrame(rows)
    if "_never" in axes:
        out["never_bought"] = pd.Series(axes["_never"].to_numpy()).groupby(labels).mean()
    else:
        out["never_bought"] = 0.0
    return out


def rfm_name(p: dict) -> str:
    """The RFM-grid name of one segment from its percentiles (see :func:`segment_percentiles`)."""
    if p.get("never_bought", 0.0) > 0.5:
        return NEVER_BOUGHT
    r = p.get("recency", 0.5)
    f = p.get("frequency", 0.5)
    m = p.get("monetary", f)
    if r >= 0.5:
        if f > 0.5:
            return "champions" if m > 0.5 and r >= CHAMPION_RECENCY else "loyal"
        return "new" if p.get("tenure", 1.0) < QUARTER else "promising"
    if f > 0.5 or m > 0.5:
        return "can't lose" if min(f, m) >= CANT_LOSE_VALUE else "at risk"
    return "lost" if r < QUARTER else "hibernating"


def agrees(name: str, p: dict) -> bool:
    """True when percentiles ``p`` satisfy every condition :data:`NAME_PROFILES` states for ``name``."""
    base = re.sub(r"( \(.*\)| \d+)$", "", name)
    p = dict(p)
    if "frequency" in p or "monetary" in p:
        p["value"] = max(p.get("frequency", 0.0), p.get("monetary", 0.0))
    return all(_RELATIONS[rel](p[axis]) for axis, rel in NAME_PROFILES.get(base, []) if axis in p)


def name_segments(X: pd.DataFrame, labels, k: int, hint: pd.Series | None = None) -> dict[int, str]:
    """Unique RFM-grid names for segments ``0 .. k-1``.

    Parameters
    ----------
    X : DataFrame
        Feature frame the segments were fitted on.
    labels : array-like
        Segment id per row.
    k : int
        Number of segments.
    hint : Series or None
        Per-row label (e.g. top_category) whose most common value tells two segments with the same
        name apart; otherwise they are numbered by value ("at risk 1" spends the most).

    Returns
    -------
    dict of int to str
        Segment id -> name such as "champions" or "at risk (grocery)".
    """
    labels = np.asarray(labels)
    pct = segment_percentiles(X, labels)
    names = {s: rfm_name(pct.loc[s].to_dict()) if s in pct.index else "empty" for s in range(k)}
    out = dict(names)
    for name in set(names.values()):
        dupes = [s for s, n in names.items() if n == name]
        if len(dupes) < 2:
            continue
        if hint is not None:
            for s in dupes:
                top = hint[labels == s].dropna()
                out[s] = f"{name} ({top.mode().iloc[0]})" if len(top) else name
        if hint is None or len({out[s] for s in dupes}) < len(dupes):
            value = pct.reindex(dupes)[[c for c in ("monetary", "frequency") if c in pct.columns]].sum(axis=1)
            for rank, s in enumerate(value.sort_values(ascending=False, kind="stable").index, start=1):
                out[int(s)] = f"{name} {rank}"
    return out
