"""Stock cover from forecasts: days of cover, P(stockout within the lead time), a reorder list.

Stock is a CSV/Parquet file (or rows) with ``product_id``, ``on_hand`` and,
for product x store forecasts, ``store_id``; an optional ``lead_time_days``
column overrides the default lead time per row. :func:`import_stock` keeps it
in the ``stock`` collection (``custscore stock import FILE``), one document per
product (and store), ``_id = product_id|store_id``; a later import of the same
product and store replaces its on-hand quantity, ``replace=True`` replaces the
whole collection (a full stock count), and either is one transaction.

Per series: demand over the lead time ``L`` (in forecast periods, fractional
periods pro rata) is taken as Normal with mean ``sum yhat`` and variance
``sum sigma_t^2``, ``sigma_t = (hi80 - lo80) / (2 x 1.2816)`` read off the 80%
interval. ``P(stockout) = 1 - Phi((on_hand - mean) / sd)``. Days of cover =
on-hand over the mean forecast per day. A series is on the reorder list when
P(stockout) >= ``threshold``; it orders up to the 95% quantile of demand over
the lead time plus one review period.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.forecast.series import KEY_SEP
from custscore.store.base import ReplaceOne, Store
from custscore.store.schema import STOCK

PERIOD_DAYS = {"D": 1.0, "W": 7.0, "M": 30.4375}
Z80, Z95 = 1.2815515655446004, 1.6448536269514722  # two-sided 80%; one-sided 95%


STOCK_FIELDS = ("product_id", "store_id", "on_hand", "lead_time_days")


def read_stock(path: Path) -> pd.DataFrame:
    """A stock file as a frame with ``product_id``, ``on_hand`` (and ``store_id``, ``lead_time_days``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"stock file {str(path)!r} does not exist; give a CSV or Parquet file with product_id, on_hand")
    frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path, dtype={"product_id": str, "store_id": str})
    return check_stock(frame, f"stock file {path.name}")


def check_stock(frame: pd.DataFrame, what: str = "stock") -> pd.DataFrame:
    """The stock rows checked: ids present, ``on_hand`` (and ``lead_time_days``) numbers >= 0, no repeated key."""
    for col in ("product_id", "on_hand"):
        if col not in frame.columns:
            raise InputError(f"{what} has no {col!r} column (columns: {', '.join(map(str, frame.columns))}); "
                             "give product_id, on_hand (and store_id, lead_time_days)")
    frame = frame.reset_index(drop=True)
    for col in ("product_id", "store_id"):
        if col in frame.columns:
            empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
            if empty.any():
                row = int(np.flatnonzero(empty)[0]) + 1
                raise InputError(f"{what} row {row}: {col} is empty; give every row a {col}")
            frame[col] = frame[col].astype(str).str.strip()
    for col in ("on_hand", "lead_time_days"):
        if col not in frame.columns:
            continue
        number = pd.to_numeric(frame[col], errors="coerce")
        bad = number.isna() | (number < 0) | ~np.isfinite(number.fillna(0))
        if col == "lead_time_days":
            bad = (number.isna() & frame[col].notna()) | (number <= 0) | ~np.isfinite(number.fillna(1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            need = "a number >= 0" if col == "on_hand" else "a number of days > 0 (or empty for the default)"
            value = frame[col].iloc[row - 1]
            value = value.item() if isinstance(value, np.generic) else value  # -2, not np.int64(-2)
            raise InputError(f"{what} row {row}: {col}={value!r} is not {need}")
        frame[col] = number
    keys = stock_keys(frame)
    repeated = keys.duplicated()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0]) + 1
        first = int(np.flatnonzero(keys == keys.iloc[row - 1])[0]) + 1
        raise InputError(f"{what} row {row}: {keys.iloc[row - 1]!r} repeats row {first}; give one row per product"
                         f"{' and store' if 'store_id' in frame.columns else ''}")
    return frame


def stock_keys(frame: pd.DataFrame) -> pd.Series:
    """``product_id|store_id`` (or ``product_id``) per stock row: the ``_id`` in the ``stock`` collection."""
    keys = frame["product_id"].astype(str)
    if "store_id" in frame.columns:
        keys = keys + KEY_SEP + frame["store_id"].astype(str)
    return keys


def import_stock(store: Store, frame: pd.DataFrame, replace: bool = False) -> int:
    """Write checked stock rows to the ``stock`` collection in one transaction; return how many.

    Each row replaces the stored document of its product (and store); with
    ``replace`` the collection is emptied first, so it holds this count only.
    """
    frame = check_stock(frame)
    stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    cols = [c for c in STOCK_FIELDS if c in frame.columns]
    ops = []
    for key, row in zip(stock_keys(frame), frame[cols].to_dict("records"), strict=True):
        doc = {"_id": key, **{c: (None if pd.isna(v) else v) for c, v in row.items()}, "updated_at": stamp}
        doc["on_hand"] = float(doc["on_hand"])
        ops.append(ReplaceOne({"_id": key}, doc, upsert=True))
    coll = store.collection(STOCK)
    with store.transaction():
        if replace:
            coll.delete_many({})
        for lo in range(0, len(ops), 5000):
            coll.bulk_write(ops[lo:lo + 5000])
    return len(ops)


def stored_stock(store: Store) -> pd.DataFrame:
    """The ``stock`` collection as a frame (``product_id``, ``on_hand`` and ``store_id``/``lead_time_days`` if held)."""
    docs = list(store.collection(STOCK).find({}, {"_id": 0, "updated_at": 0}))
    if not docs:
        raise InputError("no stock stored yet; run: custscore stock import FILE (a CSV/Parquet with product_id, "
                         "store_id, on_hand), or pass --stock FILE")
    frame = pd.DataFrame(docs)
    for col in ("store_id", "lead_time_days"):
        if col in frame.columns and frame[col].isna().all():
            frame = frame.drop(columns=col)
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
        lead = float(stock["lead_time_days"].iloc[i]) if "lead_time_days" in stock.columns else float("nan")
        lead = lead_time_days if lead != lead else lead
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
