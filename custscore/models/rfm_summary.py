"""RFM summaries for the customer-base models (BG/NBD, Gamma-Gamma), in the lifetimes conventions, in days.

Per customer, as of a date, from purchase events (``customer_id``, ``ts``, ``amount``) at or before it:

``frequency``
    repeat purchase days: the number of distinct calendar days with a purchase, minus one (several purchases
    on one day are one purchase; the first purchase day is not a repeat).
``recency``
    the customer's age at their last purchase day, in days: last purchase day minus first purchase day
    (0 when ``frequency`` is 0). Note: this is *not* the feature ``recency_days`` (days since the last
    purchase); ``recency_days == T - recency``.
``T``
    the customer's age as of the date, in days: the as-of day minus the first purchase day.
``monetary_value``
    the mean amount of the repeat purchase days (amounts summed per day, the first day left out; 0 when
    ``frequency`` is 0), what the Gamma-Gamma model reads.

Timestamps are floored to the day, as lifetimes does with ``freq="D"``. A customer who never bought is not
in the buyers' population these models describe: :func:`rfm_summary` leaves them out unless their ids are
passed, and then gives them ``frequency`` 0, ``recency`` 0, ``monetary_value`` 0 and ``T`` NaN, which the
models read as "not a buyer" (they fit without these rows and predict NaN for them).
:func:`rfm_from_features` derives the same three quantities from the model feature frame of
:mod:`custscore.models.features` (see its notes on the difference).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from custscore.errors import InputError

RFM_COLUMNS = ("frequency", "recency", "T")
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
DAY = pd.Timedelta(days=1)


def rfm_summary(events: pd.DataFrame, as_of: dt.datetime, customer_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Frequency, recency, T (days) and monetary value per customer from events up to ``as_of``.

    Parameters
    ----------
    events : DataFrame
        Columns ``customer_id``, ``ts`` (datetime-like) and ``amount``; events after ``as_of`` are ignored.
    as_of : datetime
        The date the summary describes (naive UTC, like the rest of custscore).
    customer_ids : sequence of str, optional
        Customers to return, in this order; those without a purchase by ``as_of`` get frequency 0 and T NaN.
        By default every customer with a purchase by ``as_of``.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (str), columns ``frequency``, ``recency``, ``T``, ``monetary_value`` (float64).
    """
    missing = [c for c in ("customer_id", "ts", "amount") if c not in events.columns]
    if missing:
        raise InputError(f"events lack column(s) {', '.join(missing)}; pass a frame with customer_id, ts and amount")
    as_of_day = pd.Timestamp(as_of).floor("D")
    ev = pd.DataFrame({"customer_id": events["customer_id"].astype(str),
                       "day": pd.to_datetime(events["ts"], errors="coerce"),
                       "amount": pd.to_numeric(events["amount"], errors="coerce")})
    ev = ev.dropna(subset=["day"])
    ev = ev[ev["day"] <= pd.Timestamp(as_of)]
    ev["day"] = ev["day"].dt.floor("D")
    per_day = ev.groupby(["customer_id", "day"], sort=True)["amount"].sum(min_count=1).fillna(0.0).reset_index()
    g = per_day.groupby("customer_id", sort=False)
    first = g["day"].min()
    last = g["day"].max()
    n_days = g.size()
    total = g["amount"].sum()
    first_amount = g["amount"].first()  # per_day is sorted by day within customer
    out = pd.DataFrame(index=first.index)
    out["frequency"] = (n_days - 1).astype(float)
    out["recency"] = (last - first) / DAY
    out["T"] = (as_of_day - first) / DAY
    repeat_spend = total - first_amount
    out["monetary_value"] = (repeat_spend / out["frequency"]).where(out["frequency"] > 0, 0.0)
    out = out.astype(float)
    if customer_ids is not None:
        ids = [str(c) for c in customer_ids]
        out = out.reindex(ids)
        never = out["T"].isna()
        out.loc[never, ["frequency", "recency", "monetary_value"]] = 0.0
    out.index.name = "customer_id"
    return out[list(SUMMARY_COLUMNS)]


def rfm_from_features(features: pd.DataFrame) -> pd.DataFrame:
    """The BG/NBD and Gamma-Gamma inputs (days) derived from the feature frame of ``features.customer_features``.

    Reads ``orders_total``, ``recency_days``, ``gap_mean_days`` and ``spend_mean``:
    ``frequency = orders_total - 1``, ``recency = gap_mean_days * (orders_total - 1)`` (first to last order),
    ``T = recency_days + recency`` (days since the first order), ``monetary_value = spend_mean``.

    Two approximations against :func:`rfm_summary`: orders are events, so two orders on one day count twice,
    and ``spend_mean`` includes the first order. Timestamps are not floored to days. Customers without
    orders get ``T`` NaN (not buyers).

    Parameters
    ----------
    features : DataFrame
        One row per customer with at least the four columns above.

    Returns
    -------
    DataFrame
        Same index, columns ``frequency``, ``recency``, ``T``, ``monetary_value`` (float64).
    """
    needed = ("orders_total", "recency_days", "gap_mean_days", "spend_mean")
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise InputError(f"feature frame lacks column(s) {', '.join(missing)}; build it with "
                         "custscore.models.features.customer_features")
    # NumPy, not Series arithmetic: the churn explainer calls this on every SHAP step, often for a single customer
    def column(name):
        return pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float)

    frequency, recency, T, monetary = rfm_from_columns(*(column(c) for c in needed))
    return pd.DataFrame({"frequency": frequency, "recency": recency, "T": T, "monetary_value": monetary},
                        index=features.index)


def rfm_from_columns(orders: np.ndarray, since_last: np.ndarray, gap: np.ndarray, spend: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`rfm_from_features` on float arrays (``orders_total``, ``recency_days``, ``gap_mean_days``,
    ``spend_mean``): ``frequency``, ``recency``, ``T``, ``monetary_value`` without building a frame."""
    with np.errstate(invalid="ignore"):
        buyer = (orders >= 1) & ~np.isnan(since_last)
        frequency = np.clip(np.where(buyer, orders - 1, 0.0), 0.0, None)
        recency = np.where(frequency > 0, gap * frequency, 0.0)
        recency[np.isnan(recency)] = 0.0
        T = np.where(buyer, np.clip(since_last, 0.0, None) + recency, np.nan)
        monetary = np.where(frequency > 0, spend, 0.0)
        monetary[np.isnan(monetary)] = 0.0
    return frequency, recency, T, monetary


def rfm_arrays(X, name: str = "X") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``frequency``, ``recency``, ``T`` as float arrays from a frame with those columns or an (n, 3) array.

    Rows with ``T`` NaN are non-buyers and pass through; anything else that cannot be a BG/NBD history
    (negative values, recency above T, NaN frequency or recency) raises :class:`InputError`.
    """
    if isinstance(X, pd.DataFrame):
        missing = [c for c in RFM_COLUMNS if c not in X.columns]
        if missing:
            raise InputError(f"{name} lacks column(s) {', '.join(missing)}; pass rfm_summary(...) or "
                             "rfm_from_features(...) output")
        arr = X[list(RFM_COLUMNS)].to_numpy(dtype=float)
    else:
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise InputError(f"{name} has shape {arr.shape}; pass columns frequency, recency, T")
        arr = arr[:, :3]
    x, tx, T = arr[:, 0], arr[:, 1], arr[:, 2]
    buyer = ~np.isnan(T)
    checks = (("frequency", x, (np.isnan(x) | (x < 0)) & buyer, "a count >= 0"),
              ("recency", tx, (np.isnan(tx) | (tx < 0)) & buyer, "a number of periods >= 0"),
              ("T", T, buyer & (T < 0), "a number of periods >= 0"),
              ("recency", tx, buyer & (tx > T + 1e-9), "at most T (age at last purchase <= age)"))
    for field, values, bad, fix in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{name}.{field}={float(values[i])!r} at row {i} is invalid; it must be {fix}")
    return x, tx, T
