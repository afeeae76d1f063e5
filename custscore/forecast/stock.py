"""Stock cover from forecasts: days of cover, P(stockout within the lead time), a reorder list.

Stock is a CSV/Parquet file (or rows) with ``product_id``, ``on_hand`` and,
for product x store forecasts, ``store_id``; an optional ``lead_time_days``
column overrides the default lead time per row.

Per series: demand over the lead time ``L`` (in forecast periods, fractional
periods pro rata) is taken as Normal with mean ``sum yhat`` and variance
``sum sigma_t^2``, ``sigma_t = (hi80 - lo80) / (2 x 1.2816)`` read off the 80%
interval. ``P(stockout) = 1 - Phi((on_hand - mean) / sd)``. Days of cover =
on-hand over the mean forecast per day. A series is on the reorder list when
P(stockout) >= ``threshold``; it orders up to the 95% quantile of demand over
the lead time plus one review period.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.forecast.series import KEY_SEP

PERIOD_DAYS = {"D": 1.0, "W": 7.0, "M": 30.4375}
Z80, Z95 = 1.2815515655446004, 1.6448536269514722  # two-sided 80%; one-sided 95%


def read_stock(path: Path) -> pd.DataFrame:
    """A stock file as a frame with ``product_id``, ``on_hand`` (and ``store_id``, ``lead_time_days``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"stock file {str(path)!r} does not exist; give a CSV or Parquet file with product_id, on_hand")
    frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path, dtype={"product_id": str, "store_id": str})
    for col in ("product_id", "on_hand"):
        if col not in frame.columns:
            raise InputError(f"stock file {path.name} has no {col!r} column (columns: {', '.join(map(str, frame.columns))})")
    bad = pd.to_numeric(frame["on_hand"], errors="coerce")
    if bad.isna().any() or (bad < 0).any():
        row = int(np.flatnonzero(bad.isna() | (bad < 0))[0]) + 1
        raise InputError(f"stock file {path.name} row {row}: on_hand={frame['on_hand'].iloc[row - 1]!r} is not a number >= 0")
    frame["on_hand"] = bad
    return frame


def _norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def stock_cover(forecasts: pd.DataFrame, stock: pd.DataFrame, lead_time_days: float = 7.0,
                threshold: float = 0.2) -> pd.DataFrame:
    """Days of cover, P(stockout within lead time) and order quantity per stocked series.

    Parameters
    ----------
    forecasts : DataFrame
        Rows of one forecasts version (key, by, freq, period, yhat, lo80, hi80).
    stock : DataFrame
        ``product_id``, ``on_hand`` and ``store_id`` when the forecasts are per product and store.
    lead_time_days : float
        Default lead time (a ``lead_time_days`` column overrides it per row).
    threshold : float
        Reorder when P(stockout) is at least this.

    Returns
    -------
    DataFrame
        key, on_hand, days_of_cover, demand_lead_time, p_stockout, reorder, order_qty; riskiest first.
    """
    if forecasts.empty:
        raise InputError("no forecasts to compare stock with; run: custscore train --task demand")
    by = list(forecasts["by"].iloc[0])
    if by not in (["product_id"], ["product_id", "store_id"]):
        raise InputError(f"stock needs forecasts per product or per product and store, not per {', '.join(by)}; "
                         "train with --by product or --by product,store")
    missing = [c for c in by if c not in stock.columns]
    if missing:
        raise InputError(f"stock has no {missing[0]!r} column, which forecasts per {', '.join(by)} need")
    per_day = 1.0 / PERIOD_DAYS[forecasts["freq"].iloc[0]]
    keys = stock[by].astype(str).agg(KEY_SEP.join, axis=1)
    groups = {k: g.sort_values("period") for k, g in forecasts.groupby("key")}
    rows = []
    for i, key in enumerate(keys):
        g = groups.get(key)
        if g is None:
            continue
        lead = float(stock["lead_time_days"].iloc[i]) if "lead_time_days" in stock.columns else lead_time_days
        yhat, sig = g["yhat"].to_numpy(), (g["hi80"].to_numpy() - g["lo80"].to_numpy()) / (2 * Z80)
        periods = lead * per_day
        w = np.clip(periods - np.arange(len(yhat)), 0.0, 1.0)
        mean = float(np.sum(w * yhat))
        sd = float(np.sqrt(np.sum(w * sig ** 2)))
        on_hand = float(stock["on_hand"].iloc[i])
        p = (1.0 if on_hand < mean else 0.0) if sd == 0 else _norm_sf((on_hand - mean) / sd)
        daily = float(yhat.mean() * per_day)
        w2 = np.clip(periods + per_day * 7 - np.arange(len(yhat)), 0.0, 1.0)  # lead time + a week's review
        target = float(np.sum(w2 * yhat) + Z95 * np.sqrt(np.sum(w2 * sig ** 2)))
        rows.append({"key": key, "on_hand": on_hand, "days_of_cover": on_hand / daily if daily > 0 else float("inf"),
                     "lead_time_days": lead, "demand_lead_time": mean, "p_stockout": p, "reorder": p >= threshold,
                     "order_qty": int(math.ceil(max(target - on_hand, 0.0))) if p >= threshold else 0})
    if not rows:
        raise InputError(f"no stock row matches a forecast series; stock keys look like {keys.iloc[0] if len(keys) else '(none)'!r}, "
                         f"forecast keys like {forecasts['key'].iloc[0]!r}")
    return pd.DataFrame(rows).sort_values(["p_stockout", "days_of_cover"], ascending=[False, True]).reset_index(drop=True)
