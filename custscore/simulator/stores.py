"""Stores and a demand process per product x store, with the expected demand as ground truth.

This part of the simulator is separate from the customer simulation
(``generate.py``) and composes with it: :func:`assign_stores` gives purchase
events a ``store_id`` afterwards from its own random stream, so the customers
and their purchases stay exactly what the same seed always gave.

* **Stores**: ``n_stores`` physical stores ``ST001..`` with a region and a size
  (LogNormal(0, 0.5), mean about 1.1) plus the virtual store :data:`ONLINE_STORE`
  (a fulfilment centre, size 2) that serves every non-store channel.
* **Demand** of product ``p`` in store ``s`` on day ``t`` (expected units):
  ``lam = base[p] * size[s] * weekly[dow] * yearly(t) * holiday(t) * (1 + trend[p]) ** (t / 365)
  * (1 + uplift[p] * promo[p, s, t])`` with Zipf-like product popularity ``base``
  (the slowest movers sell a fraction of a unit a day: intermittent series),
  a weekly profile peaking on Saturday, a yearly sine with its top in December,
  holiday peaks (Black Friday weekend x1.8, 10-24 December x1.4, 1 January x0.4),
  a per-product trend of N(3%, 8%) a year and promotions of 5-10 days about every
  two months per product (chain-wide, 70% of stores take part) with an uplift
  of 40-100%.
* **Sales** ~ NegativeBinomial(mean ``lam``, dispersion ``k = 8``), i.e. Poisson-Gamma.
  ``expected`` in :attr:`DemandData.sales` is ``lam``, the ``_truth`` an oracle
  forecaster uses.

* **Stores and promotions on the customers' purchases** (:class:`ShopNetwork`, wired into
  :func:`custscore.simulator.generate.simulate` by ``SimulationConfig.stores``): every
  customer has a home store, a physical store of their own (true) region drawn with
  probability proportional to size (any store when their region has none); a purchase
  through the ``store`` channel carries that ``store_id``, every other channel
  :data:`ONLINE_STORE`. A chain promotion calendar over the simulated days (the same
  rule as above: 5-10 days about every two months per product, 70% of the stores
  taking part) sets ``promo`` on each purchase of a promoted product in a taking-part
  store that day. In the customer simulation the flag marks the purchase only: it does
  not change what customers buy, so a seed's customers, times, categories, products,
  amounts and quantities are the same with or without stores (the demand process above
  is where promotions lift demand).

Reproducibility: the demand simulation comes from ``np.random.default_rng([seed, 5501])``;
the shop network from ``[seed, 5507]`` (stores) and ``[seed, 5509]`` (calendar), home
stores per block of customers from ``[seed, 5511, block]``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custscore.simulator import personas

__all__ = ["ONLINE_STORE", "DemandConfig", "DemandData", "make_stores", "simulate_demand", "assign_stores",
           "expected_quantiles", "DISPERSION", "ShopNetwork"]

ONLINE_STORE = "ONLINE"
DISPERSION = 8.0  # negative binomial k: variance = lam + lam^2 / k
_STREAM = 5501
_ASSIGN_STREAM = 5503
_SHOP_STREAM = 5507
_CALENDAR_STREAM = 5509
_HOME_STREAM = 5511
_DAY = 86_400
_WEEKLY = np.array([0.85, 0.8, 0.85, 0.95, 1.15, 1.45, 0.95])  # Monday .. Sunday


@dataclass(frozen=True)
class DemandConfig:
    """Sizes of a demand simulation.

    Parameters
    ----------
    n_products, n_stores : int
        Products (catalogue ids taken round-robin over the categories) and physical stores;
        the online store is added unless ``online=False``.
    days : int
        Days of history ending on ``end`` (inclusive).
    end : datetime.date or None
        Last day; ``None`` means 2026-06-30 (a fixed day keeps outputs stable).
    seed : int
        Random seed.
    scale : float
        Mean units a day of the most popular product in a store of size 1.
    """

    n_products: int = 12
    n_stores: int = 4
    days: int = 730
    end: dt.date | None = None
    seed: int = 0
    scale: float = 12.0
    online: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        for name in ("n_products", "n_stores", "days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.n_products > len(personas.PRODUCT_IDS):
            raise ValueError(f"n_products must be at most {len(personas.PRODUCT_IDS)}, got {self.n_products}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")


@dataclass
class DemandData:
    """A demand simulation: stores, products and one row per product, store and day."""

    stores: pd.DataFrame  # store_id, region, size
    products: pd.DataFrame  # product_id, category, base, trend, uplift
    sales: pd.DataFrame  # product_id, category, store_id, date, quantity, promo, expected

    def events(self) -> list[dict]:
        """Pre-aggregated sales events: one per product, store and day with a sale (for a store)."""
        sold = self.sales[self.sales["quantity"] > 0]
        ts = pd.to_datetime(sold["date"]).dt.to_pydatetime()
        return [{"ts": t, "product_id": p, "category": c, "store_id": s, "quantity": int(q), "promo": bool(pr),
                 "_truth": {"expected_demand": float(e)}}
                for t, p, c, s, q, pr, e in zip(ts, sold["product_id"], sold["category"], sold["store_id"],
                                                sold["quantity"], sold["promo"], sold["expected"], strict=True)]


def make_stores(n_stores: int, rng: np.random.Generator, online: bool = True) -> pd.DataFrame:
    """Physical stores with a region and a size, plus the online store."""
    regions = np.array(personas.REGIONS, dtype=object)
    frame = pd.DataFrame({"store_id": [f"ST{i:03d}" for i in range(1, n_stores + 1)],
                          "region": regions[np.arange(n_stores) % len(regions)],
                          "size": np.round(rng.lognormal(0.0, 0.5, n_stores), 3)})
    if online:
        frame = pd.concat([frame, pd.DataFrame({"store_id": [ONLINE_STORE], "region": ["online"], "size": [2.0]})],
                          ignore_index=True)
    return frame


def _holiday_factor(days: pd.DatetimeIndex) -> np.ndarray:
    factor = np.ones(len(days))
    month, day = days.month.to_numpy(), days.day.to_numpy()
    factor[(month == 12) & (day >= 10) & (day <= 24)] *= 1.4
    factor[(month == 1) & (day == 1)] *= 0.4
    # Black Friday: the fourth Friday of November, and the weekend after it
    friday = (month == 11) & (days.day_of_week.to_numpy() == 4) & (day >= 22) & (day <= 28)
    for i in np.flatnonzero(friday):
        factor[i:i + 3] *= 1.8
    return factor


def _promotions(rng: np.random.Generator, n_products: int, n_stores: int, n_days: int) -> np.ndarray:
    promo = np.zeros((n_products, n_stores, n_days), dtype=bool)
    for p in range(n_products):
        start = int(rng.integers(0, 60))
        while start < n_days:
            length = int(rng.integers(5, 11))
            stores = rng.random(n_stores) < 0.7
            promo[p, stores, start:start + length] = True
            start += length + int(rng.integers(40, 80))
    return promo


def simulate_demand(config: DemandConfig | None = None) -> DemandData:
    """Simulate daily unit sales per product and store with their expected demand.

    Parameters
    ----------
    config : DemandConfig or None
        Sizes and seed (defaults: 12 products, 4 stores + online, 730 days).

    Returns
    -------
    DemandData
        Stores, products and a ``sales`` frame with every product x store x day
        (zero days included) and its ``expected`` demand.

    Raises
    ------
    ValueError
        If the configuration is invalid.
    """
    config = config or DemandConfig()
    config.validate()
    rng = np.random.default_rng([config.seed, _STREAM])
    end = pd.Timestamp(config.end or dt.date(2026, 6, 30))
    days = pd.date_range(end=end, periods=config.days, freq="D")
    stores = make_stores(config.n_stores, rng, config.online)
    n_p, n_s, n_t = config.n_products, len(stores), len(days)
    n_cat, per_cat = len(personas.CATEGORIES), personas.N_PRODUCTS
    ids = np.array([personas.PRODUCT_IDS[(i % n_cat) * per_cat + i // n_cat] for i in range(n_p)], dtype=object)
    # popularity: a shuffled Zipf ladder, so every category has fast and slow movers
    base = config.scale / (1.0 + rng.permutation(n_p)) ** 1.4
    trend = rng.normal(0.03, 0.08, n_p)
    uplift = rng.uniform(0.4, 1.0, n_p)
    t_years = (np.arange(n_t) - n_t + 1) / 365.0
    season = (_WEEKLY[days.day_of_week.to_numpy()] * (1.0 + 0.25 * np.cos(2 * np.pi * (days.day_of_year.to_numpy() - 350) / 365.25))
              * _holiday_factor(days))
    promo = _promotions(rng, n_p, n_s, n_t)
    lam = (base[:, None, None] * stores["size"].to_numpy()[None, :, None] * season[None, None, :]
           * (1.0 + trend[:, None, None]) ** t_years[None, None, :] * (1.0 + uplift[:, None, None] * promo))
    qty = rng.poisson(rng.gamma(DISPERSION, lam / DISPERSION))
    cats = np.array([pid.rsplit("-", 1)[0] for pid in ids], dtype=object)
    grid = pd.MultiIndex.from_product([range(n_p), range(n_s), range(n_t)], names=["p", "s", "t"])
    p_idx, s_idx, t_idx = (grid.get_level_values(i).to_numpy() for i in range(3))
    sales = pd.DataFrame({"product_id": ids[p_idx], "category": cats[p_idx],
                          "store_id": stores["store_id"].to_numpy()[s_idx], "date": days[t_idx],
                          "quantity": qty.ravel(), "promo": promo.ravel(), "expected": lam.ravel()})
    products = pd.DataFrame({"product_id": ids, "category": cats, "base": base, "trend": trend, "uplift": uplift})
    return DemandData(stores=stores, products=products, sales=sales)


def expected_quantiles(expected: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of the simulated sales distribution (NegBin(mean ``expected``, k))."""
    from scipy import stats

    lam = np.maximum(np.asarray(expected, float), 1e-9)
    return stats.nbinom.ppf(q, DISPERSION, DISPERSION / (DISPERSION + lam))


def _draw_in_region(rng: np.random.Generator, regions: np.ndarray, physical: pd.DataFrame) -> np.ndarray:
    """Row positions in ``physical``: a store of each region (by size), any store where the region has none."""
    u = rng.random(len(regions))
    out = np.empty(len(regions), dtype=np.int64)
    sizes = physical["size"].to_numpy(float)
    store_region = physical["region"].to_numpy(object)
    everywhere = np.arange(len(physical))
    for region in pd.unique(regions):
        rows = np.flatnonzero(regions == region) if region is not None else np.flatnonzero(pd.isna(regions))
        pool = np.flatnonzero(store_region == region)
        pool = pool if pool.size else everywhere
        cum = np.cumsum(sizes[pool])
        out[rows] = pool[np.minimum(np.searchsorted(cum / cum[-1], u[rows], side="right"), pool.size - 1)]
    return out


def assign_stores(events: list[dict], stores: pd.DataFrame, region_of: dict[str, str | None], seed: int) -> None:
    """Give each event a ``store_id`` in place: a store in the customer's region for the store channel.

    Store-channel purchases go to a physical store of the customer's region
    (chosen with probability proportional to size; any store if the region is
    unknown); every other channel goes to :data:`ONLINE_STORE`. Uses its own
    random stream, so the events are otherwise unchanged.
    """
    rng = np.random.default_rng([seed, _ASSIGN_STREAM])
    physical = stores[stores["store_id"] != ONLINE_STORE].reset_index(drop=True)
    in_store = np.array([e.get("channel") == "store" for e in events], dtype=bool)
    regions = np.array([region_of.get(e.get("customer_id")) for e in events], dtype=object)
    ids = np.full(len(events), ONLINE_STORE, dtype=object)
    if not physical.empty and in_store.any():
        picked = _draw_in_region(rng, regions, physical)
        ids[in_store] = physical["store_id"].to_numpy(object)[picked[in_store]]
    for event, store_id in zip(events, ids.tolist(), strict=True):
        event["store_id"] = store_id


class ShopNetwork:
    """Stores and a chain promotion calendar for the customer simulation (see the module docstring).

    Parameters
    ----------
    n_stores : int
        Physical stores (>= 1); the online store is added.
    n_products : int
        Products of the calendar (indices into :data:`~custscore.simulator.personas.PRODUCT_IDS`).
    days : int
        Days of history the events span; day ``d`` of the calendar is ``end - days + d``.
    seed : int
        The simulation seed.
    """

    def __init__(self, n_stores: int, n_products: int, days: int, seed: int):
        self.seed = int(seed)
        self.days = int(days)
        self.stores = make_stores(int(n_stores), np.random.default_rng([self.seed, _SHOP_STREAM]))
        self.store_ids = self.stores["store_id"].to_numpy(object)
        self.online = int(np.flatnonzero(self.store_ids == ONLINE_STORE)[0])
        self._physical = self.stores.drop(index=self.online).reset_index(drop=True)
        rng = np.random.default_rng([self.seed, _CALENDAR_STREAM])
        # window id per (product, day), -1 outside promotions; which stores take part in each window.
        # Drawn as arrays (a Python loop over 4,000 products cost over a second per simulate call):
        # window k of product p starts at U[0, 60) + the lengths and gaps of the windows before it.
        k_most = self.days // 45 + 2
        length = rng.integers(5, 11, (n_products, k_most))
        gap = rng.integers(40, 80, (n_products, k_most))
        start = rng.integers(0, 60, (n_products, 1)) + np.cumsum(length + gap, axis=1) - (length + gap)
        self.taking_part = rng.random((n_products * k_most, len(self.stores))) < 0.7
        self.window = np.full((n_products, self.days + 1), -1, dtype=np.int32)
        offset = np.arange(10)
        day = start[:, :, None] + offset[None, None, :]
        inside = (offset[None, None, :] < length[:, :, None]) & (day <= self.days)
        p_idx, k_idx, _ = np.nonzero(inside)
        self.window[p_idx, day[inside]] = (p_idx * k_most + k_idx).astype(np.int32)

    def home_stores(self, regions: np.ndarray, block: int) -> np.ndarray:
        """Home store (row of :attr:`stores`) of each customer of a block, from their region names."""
        rng = np.random.default_rng([self.seed, _HOME_STREAM, int(block)])
        picked = _draw_in_region(rng, regions, self._physical)
        return np.where(picked >= self.online, picked + 1, picked)  # rows of the physical stores inside ``stores``

    def place(self, ev: dict[str, np.ndarray], home: np.ndarray, first: int, store_channel: int) -> None:
        """Add ``ev["store"]`` (row of :attr:`stores`) and ``ev["promo"]`` to a block's events, in place.

        ``home[i]`` is the home store of customer ``first + i``; ``ev["t"]`` holds seconds
        relative to the end of the history, ``ev["channel"]`` channel indices and
        ``ev["product"]`` product indices.
        """
        store = np.where(ev["channel"] == store_channel, home[ev["idx"] - first], self.online)
        day = np.clip((ev["t"] + self.days * _DAY) // _DAY, 0, self.days).astype(np.int64)
        window = self.window[ev["product"], day]
        ev["store"] = store
        ev["promo"] = (window >= 0) & self.taking_part[np.maximum(window, 0), store]
