"""Targets without leakage: churn labels after a cutoff, satisfaction, a user's own field, and oracles.

Churn: features use events up to ``cutoff`` only; the label is 1 when the
customer makes no purchase in ``(cutoff, cutoff + horizon]``. The population is
customers who signed up and bought at least once by the cutoff (someone who has
never bought cannot stop buying). A label is never derived from a feature (the
common mistake "churned = recency > 90" lets the model read the answer).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from custscore.errors import InputError

DEFAULT_HORIZON_DAYS = 90
DECAY_DAYS = 60  # the simulator halves purchases in the 60 days before churn (see simulator.generate)


def default_cutoff(last_event: dt.datetime, horizon_days: int = DEFAULT_HORIZON_DAYS) -> dt.datetime:
    """The latest cutoff whose label window is fully observed: last event minus the horizon."""
    return (pd.Timestamp(last_event) - pd.Timedelta(days=horizon_days)).to_pydatetime()


def check_window(cutoff: dt.datetime, horizon_days: int, first_event: dt.datetime, last_event: dt.datetime) -> None:
    """Refuse a cutoff whose label window is not covered by the stored events."""
    if horizon_days < 1:
        raise InputError(f"horizon={horizon_days} must be at least 1 day; pass e.g. --horizon 90")
    end = pd.Timestamp(cutoff) + pd.Timedelta(days=horizon_days)
    if end > pd.Timestamp(last_event):
        latest = default_cutoff(last_event, horizon_days).date()
        raise InputError(f"cutoff={pd.Timestamp(cutoff).date()} needs events up to {end.date()} but the last event is "
                         f"{pd.Timestamp(last_event).date()}; pass --cutoff {latest} or earlier, or a shorter --horizon")
    if pd.Timestamp(cutoff) <= pd.Timestamp(first_event):
        raise InputError(f"cutoff={pd.Timestamp(cutoff).date()} is before the first event "
                         f"({pd.Timestamp(first_event).date()}); pass a later --cutoff")


def label_window(profiles: pd.DataFrame, events: pd.DataFrame, cutoff: dt.datetime,
                 horizon_days: int) -> tuple[pd.Index, set, set]:
    """Who had signed up by the cutoff, who had bought by it, and who bought in (cutoff, cutoff + horizon].

    Every out-of-time label (churn, first purchase) is read from these three; nothing after the window counts.
    """
    c = pd.Timestamp(cutoff)
    end = c + pd.Timedelta(days=horizon_days)
    buyers = set(events.loc[events["ts"] <= c, "customer_id"])
    signed = profiles.index[(profiles["signup_date"] <= c).fillna(False).to_numpy()]
    bought_in_window = set(events.loc[(events["ts"] > c) & (events["ts"] <= end), "customer_id"])
    return signed, buyers, bought_in_window


def churn_labels(profiles: pd.DataFrame, events: pd.DataFrame, cutoff: dt.datetime,
                 horizon_days: int = DEFAULT_HORIZON_DAYS) -> pd.Series:
    """1 = no purchase in (cutoff, cutoff + horizon], for customers who signed up and bought by the cutoff.

    Parameters
    ----------
    profiles : DataFrame
        Indexed by customer id with a ``signup_date`` column (``features.customers_frame``).
    events : DataFrame
        ``features.events_frame`` of all customers, including events after the cutoff.
    """
    signed, buyers, bought_after = label_window(profiles, events, cutoff, horizon_days)
    population = [cid for cid in signed if cid in buyers]
    labels = pd.Series([0 if cid in bought_after else 1 for cid in population], index=population, dtype=int)
    labels.index.name = "customer_id"
    return labels


def infer_kind(target: pd.Series) -> str:
    """'classification' for a binary or few-valued non-numeric field, else 'regression'."""
    values = target.dropna()
    if values.empty:
        raise InputError(f"target field {target.name!r} has no values; pick a field that is filled in")
    if values.map(lambda v: isinstance(v, bool)).all() or values.nunique() == 2:
        return "classification"
    if pd.to_numeric(values, errors="coerce").notna().all():
        return "regression"
    raise InputError(f"target field {target.name!r} has {values.nunique()} distinct non-numeric values; "
                     "binary classification needs exactly two, regression needs numbers")


def encode_target(target: pd.Series, kind: str) -> tuple[pd.Series, list | None]:
    """Drop missing targets; classification labels become 0/1 (classes returned), regression floats."""
    values = target.dropna()
    if kind == "regression":
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna()]
        if len(bad):
            raise InputError(f"target field {target.name!r} value {bad.iloc[0]!r} (customer {bad.index[0]}) is not a "
                             "number; use --kind classification or clean the field")
        return numbers.astype(float), None
    classes = sorted(values.unique(), key=str)
    if len(classes) != 2:
        raise InputError(f"target field {target.name!r} has {len(classes)} classes {classes[:5]}; "
                         "classification here is binary - map it to two values first")
    return (values == classes[1]).astype(int), classes


# ---------------------------------------------------------------- oracles (simulated data only)

def churn_oracle_omniscient(truth: pd.DataFrame, cutoff: dt.datetime, horizon_days: int = DEFAULT_HORIZON_DAYS,
                            grid: int = 400) -> pd.Series:
    """P(no purchase in the window) knowing the true parameters AND whether the customer had churned by the cutoff.

    An upper bound no predictor reaches: whether a quiet customer has already
    left is not observable at the cutoff. Shown beside :func:`churn_oracle`.
    ``E_T[exp(-expected purchases in the window | churn time T)]`` with the
    remaining lifetime ``T - cutoff ~ Exponential(hazard / 30 per day)``.

    Parameters
    ----------
    truth : DataFrame
        Indexed by customer id with ``churned_at``, ``churn_hazard`` (monthly) and
        ``purchase_rate`` (per day) from the customers' ``_truth``.
    """
    c = pd.Timestamp(cutoff)
    churned = (pd.to_datetime(truth["churned_at"]) <= c).fillna(False).to_numpy()
    lam = truth["churn_hazard"].to_numpy(float) / 30.0
    rate = truth["purchase_rate"].to_numpy(float)
    h = float(horizon_days)
    span = h + DECAY_DAYS
    u = (np.arange(grid) + 0.5) * span / grid  # churn time after the cutoff, midpoints
    du = span / grid
    stop = np.minimum(u, h)
    half = np.clip(stop - np.maximum(0.0, u - DECAY_DAYS), 0.0, None)
    expected = rate[:, None] * (stop[None, :] - 0.5 * half[None, :])
    density = lam[:, None] * np.exp(-lam[:, None] * u[None, :])
    p_none = (density * np.exp(-expected)).sum(axis=1) * du + np.exp(-lam * span) * np.exp(-rate * h)
    return pd.Series(np.where(churned, 1.0, np.clip(p_none, 0.0, 1.0)), index=truth.index, name="oracle_omniscient")


def churn_oracle(truth: pd.DataFrame, recency_days: pd.Series, horizon_days: int = DEFAULT_HORIZON_DAYS,
                 grid: int = 600) -> pd.Series:
    """The best achievable churn probability: the simulator's true parameters, the same observations as the models.

    Bayes-optimal given the true purchase rate and hazard and the days since
    the last purchase before the cutoff: the lifetime after the last purchase
    ``S ~ Exponential(hazard / 30 per day)``, purchases at the true rate (halved
    in the 60 days before churn); the silence since the last purchase updates
    the belief that the customer has already left, then the window
    ``(cutoff, cutoff + horizon]`` is integrated over ``S``.

    Parameters
    ----------
    truth : DataFrame
        Indexed by customer id with ``churn_hazard`` (monthly) and ``purchase_rate`` (per day).
    recency_days : Series
        Days from the last purchase to the cutoff (the ``recency_days`` feature), same index.
    """
    lam = truth["churn_hazard"].to_numpy(float) / 30.0
    rate = truth["purchase_rate"].to_numpy(float)
    d = recency_days.reindex(truth.index).to_numpy(float)[:, None]
    h = float(horizon_days)
    span = d + h + DECAY_DAYS
    s = (np.arange(grid) + 0.5)[None, :] / grid * span  # churn time after the last purchase
    ds = span / grid

    def expected(a, b):  # purchases expected over (a, b] when churning at s
        hi = np.minimum(b, s)
        active = np.clip(hi - a, 0.0, None)
        half = np.clip(hi - np.maximum(a, s - DECAY_DAYS), 0.0, None)
        return rate[:, None] * (active - 0.5 * half)

    silence = np.exp(-expected(0.0, d))
    quiet_window = np.where(s <= d, 1.0, np.exp(-expected(d, d + h)))
    density = lam[:, None] * np.exp(-lam[:, None] * s) * ds
    tail = np.exp(-lam * span[:, 0]) * np.exp(-rate * d[:, 0])  # still alive beyond the grid
    p = ((density * silence * quiet_window).sum(1) + tail * np.exp(-rate * h)) / ((density * silence).sum(1) + tail)
    return pd.Series(np.clip(p, 0.0, 1.0), index=truth.index, name="oracle")


def truth_frame(customers: list[dict]) -> pd.DataFrame | None:
    """The ``_truth`` of simulated customers as a frame, or None when the data is not simulated."""
    rows = {str(c["_id"]): c["_truth"] for c in customers if isinstance(c.get("_truth"), dict)}
    if len(rows) < len(customers) * 0.9:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "customer_id"
    return frame
