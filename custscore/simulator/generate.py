"""Vectorised simulator of a customer base and its purchase events, with ground truth.

All times are naive UTC with second resolution; ``end`` is truncated to whole seconds.

* **Persona** drawn by weight from :data:`~custscore.simulator.personas.PERSONAS`.
  Age ~ Normal clipped to [18, 90]; annual income ~ LogNormal (2 decimals);
  region and channel from the persona tilts; ``signup = end - 3 years * Beta(2, 2 r)``
  with the persona's ``signup_recency`` r (new explorers signed up recently).
* **Satisfaction** (noise-free, clipped to 1..10): ``base + 0.35 z - 0.35 (tp - tp_persona)
  - 1.5 (ps - ps_persona) + 0.3 (log income - persona mean)`` with ``z ~ N(0, 1)``,
  ticket propensity ``tp = persona rate * Gamma(2, 1/2)`` per year and individual
  price sensitivity ``ps``.  Observed: ``round(clip(true + N(0, 0.7), 1, 10))``.
* **Churn**: constant monthly hazard ``h = sigmoid(-1.1 + 0.35 (5.5 - sat) + 1.2 ps
  + 0.1 tp - 1.45 log1p(tenure months at end))`` (long-standing customers are the
  low-hazard survivors); churn time ``signup + Exponential(mean 30 / h days)``.
  ``_truth.churned_at`` is set if it is <= ``end``; ``_truth.churn_probability`` is
  1 if churned, else ``1 - exp(-h * horizon_days / 30)``.
* **Support tickets** ~ ``Poisson(active years * (tp + 0.5 max(0, 5.5 - sat)))``.
* **Purchases**: Poisson process over ``[max(signup, end - days), min(churn, end)]``
  with daily rate ``persona rate / 30 * exp(0.2 (sat - 6.5)) * Gamma(6, 1/6)``,
  halved in the 60 days before the churn time (a leading signal, also visible
  before ``end`` for customers churning soon after).  Items per event: see
  :func:`~custscore.simulator.personas.draw_items` (category from the customer's
  own Dirichlet(persona alpha) mix, Zipf-like product, ``1 + Poisson(basket - 1)``
  units at a log-normal price, customer's channel with probability 0.8).
* **Data quality**: age, income, region, channel, support_tickets and
  customer_satisfaction are each ``None`` with probability ``missing_rate``;
  with probability ``outlier_rate`` income is multiplied by 10..20, age set to
  91..110 and an event amount multiplied by 10..30.

Reproducibility: customer attributes come from ``np.random.default_rng(seed)``;
events are generated per fixed block of 1000 customers with
``np.random.default_rng([seed, 7919, block])``, so output is independent of ``batch_size``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from custscore.simulator import personas, products, stores

__all__ = ["SimulationConfig", "SimulatedBatch", "simulate", "simulate_stream_tick"]

_BLOCK = 1000
_EVENT_STREAM = 7919
_DAY = 86_400
_SIGNUP_WINDOW_DAYS = 3 * 365
_DECAY_DAYS = 60
_HAZARD = (-1.1, 0.35, 1.2, 0.1, 1.45)  # intercept, (5.5 - sat), price sensitivity, tickets/yr, log1p(tenure)
_P = personas.persona_table()
_NAMES = np.array([p.name for p in personas.PERSONAS], dtype=object)
_CATS = np.array(personas.CATEGORIES, dtype=object)
_CHANS = np.array(personas.CHANNELS, dtype=object)
_REGS = np.array(personas.REGIONS, dtype=object)
_PRODUCT_IDS = np.array(personas.PRODUCT_IDS, dtype=object)
_MISSING_FIELDS = ("age", "income", "region", "channel", "support_tickets", "customer_satisfaction")


@dataclass(frozen=True)
class SimulationConfig:
    """Configuration of a batch simulation run.

    Parameters
    ----------
    n_customers : int
        Number of customers to simulate (>= 1).
    seed : int
        Non-negative random seed; same config gives identical output.
    end : datetime.datetime or None
        Naive UTC reference time (truncated to whole seconds); ``None`` means
        today 00:00 UTC.
    days : int
        Events span ``[end - days, end]``.
    horizon_days : int
        Horizon of the ground-truth churn probability.
    missing_rate : float
        Per-field probability of a missing (``None``) customer attribute.
    outlier_rate : float
        Probability of an outlier income, age or event amount.
    id_prefix : str
        Customer ids are ``f"{id_prefix}{i:07d}"`` for ``i = 1..n_customers``.
    products : bool
        Choose products by taste and add ratings (:mod:`custscore.simulator.products`; own random
        streams, so customers, times, categories and amounts are the same either way); False keeps
        the plain Zipf-within-category product draw.
    stores : int
        Physical stores (:class:`~custscore.simulator.stores.ShopNetwork`, own random streams): store-channel
        purchases carry their customer's home ``store_id``, other channels ``ONLINE``, and every purchase a
        ``promo`` flag from a chain promotion calendar; 0 leaves both fields out.
    """

    n_customers: int
    seed: int = 0
    end: dt.datetime | None = None
    days: int = 365
    horizon_days: int = 90
    missing_rate: float = 0.02
    outlier_rate: float = 0.01
    id_prefix: str = "C"
    products: bool = True
    stores: int = 8

    def validate(self) -> None:
        """Check the configuration.

        Raises
        ------
        ValueError
            One-line message naming the field, the bad value and the fix.
        """
        for name in ("n_customers", "days", "horizon_days"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}; pass a positive integer")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}; pass a non-negative integer")
        if self.end is not None and (not isinstance(self.end, dt.datetime) or self.end.tzinfo is not None):
            raise ValueError(f"end must be a naive UTC datetime or None, got {self.end!r}; "
                             "use dt.astimezone(timezone.utc).replace(tzinfo=None)")
        for name in ("missing_rate", "outlier_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {v!r}; pass a probability")
        if not _is_int(self.stores) or not 0 <= self.stores <= 999:
            raise ValueError(f"stores must be an integer in [0, 999], got {self.stores!r}; pass e.g. 8 (0: no stores)")
        if not isinstance(self.id_prefix, str) or not self.id_prefix:
            raise ValueError(f"id_prefix must be a non-empty string, got {self.id_prefix!r}; pass e.g. 'C'")


@dataclass
class SimulatedBatch:
    """Customers (public schema dicts) and all of their purchase events."""

    customers: list[dict]
    events: list[dict]


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _draw_customers(rng: np.random.Generator, n: int, new_signups: bool,
                    missing_rate: float, outlier_rate: float) -> dict[str, np.ndarray]:
    """Draw all customer-level attributes; times are int seconds relative to ``end``."""
    p = rng.choice(len(personas.PERSONAS), size=n, p=_P["weight"])
    age = np.clip(np.rint(rng.normal(_P["age_mean"][p], _P["age_sd"][p])), 18, 90).astype(np.int64)
    log_inc = rng.normal(_P["log_income_mean"][p], _P["log_income_sd"][p])
    region = personas.draw_choice(rng, _P["region_probs"][p])
    channel = personas.draw_choice(rng, _P["channel_probs"][p])
    frac = rng.beta(2.0, 2.0 * _P["signup_recency"][p])
    signup = np.zeros(n, np.int64) if new_signups else -np.floor(frac * _SIGNUP_WINDOW_DAYS * _DAY).astype(np.int64)
    ps = np.clip(_P["price_sensitivity"][p] + rng.normal(0.0, 0.08, n), 0.0, 1.0)
    tp = _P["tickets_per_year"][p] * rng.gamma(2.0, 0.5, n)
    sat = (_P["base_satisfaction"][p] + 0.35 * rng.standard_normal(n) - 0.35 * (tp - _P["tickets_per_year"][p])
           - 1.5 * (ps - _P["price_sensitivity"][p]) + 0.3 * (log_inc - _P["log_income_mean"][p]))
    sat = np.clip(sat, 1.0, 10.0)
    tenure_months = -signup / (30.0 * _DAY)
    a, b, c, d, e = _HAZARD
    logit = a + b * (5.5 - sat) + c * ps + d * tp - e * np.log1p(tenure_months)
    hazard = 1.0 / (1.0 + np.exp(-logit))
    churn_days = np.minimum(rng.exponential(30.0 / hazard), 1e5)
    churn = signup + np.maximum(np.floor(churn_days * _DAY).astype(np.int64), 1)
    active_years = (np.minimum(churn, 0) - signup) / (365.0 * _DAY)
    tickets = rng.poisson(active_years * (tp + 0.5 * np.maximum(0.0, 5.5 - sat)))
    rate = _P["purchase_rate_30d"][p] / 30.0 * np.exp(0.2 * (sat - 6.5)) * rng.gamma(6.0, 1 / 6, n)
    mix = rng.standard_gamma(_P["category_alpha"][p])
    basket = 1.0 + (_P["basket_mean"][p] - 1.0) * rng.gamma(4.0, 0.25, n)
    price_level = _P["price_level"][p] * rng.lognormal(0.0, 0.15, n)
    observed = np.rint(np.clip(sat + rng.normal(0.0, 0.7, n), 1.0, 10.0)).astype(np.int64)
    missing = rng.random((n, len(_MISSING_FIELDS))) < missing_rate
    inc_out = rng.random(n) < outlier_rate
    income = np.round(np.exp(log_inc) * np.where(inc_out, rng.uniform(10.0, 20.0, n), 1.0), 2)
    age_out = rng.random(n) < outlier_rate
    age = np.where(age_out, rng.integers(91, 111, n), age)
    return dict(persona=p, age=age, income=income, region=region, channel=channel, signup=signup,
                sat=sat, observed=observed, hazard=hazard, churn=churn, tickets=tickets, rate=rate,
                mix=mix / mix.sum(axis=1, keepdims=True), basket=basket, price_level=price_level,
                missing=missing)


def _block_events(c: dict[str, np.ndarray], lo: int, hi: int, seed: int, block: int,
                  days: int, outlier_rate: float) -> dict[str, np.ndarray]:
    """Events of customers ``lo..hi-1`` sorted by (customer index, time)."""
    rng = np.random.default_rng([seed, _EVENT_STREAM, block])
    start = np.maximum(c["signup"][lo:hi], -days * _DAY)
    stop = np.minimum(c["churn"][lo:hi], 0)
    decay = c["churn"][lo:hi] - _DECAY_DAYS * _DAY
    len_a = np.maximum(np.minimum(stop, decay) - start, 0)
    start_b = np.maximum(start, decay)
    len_b = np.maximum(stop - start_b, 0)
    rate = c["rate"][lo:hi]
    n_a = rng.poisson(rate * len_a / _DAY)
    n_b = rng.poisson(0.5 * rate * len_b / _DAY)
    idx = np.concatenate([np.repeat(np.arange(lo, hi), n_a), np.repeat(np.arange(lo, hi), n_b)])
    seg_start = np.concatenate([np.repeat(start, n_a), np.repeat(start_b, n_b)])
    seg_len = np.concatenate([np.repeat(len_a, n_a), np.repeat(len_b, n_b)])
    t = seg_start + np.floor(rng.random(len(idx)) * seg_len).astype(np.int64)
    order = np.lexsort((t, idx))
    idx, t = idx[order], t[order]
    ev = personas.draw_items(rng, c["mix"][idx], c["basket"][idx], c["price_level"][idx], c["channel"][idx],
                             outlier_rate)
    ev.update(idx=idx, t=t)
    return ev


def _event_dicts(ids: list[str], ev: dict[str, np.ndarray], ts: np.ndarray,
                 store_ids: np.ndarray | None = None) -> list[dict]:
    cols = (ids, ts.tolist(), ev["amount"].tolist(), _CATS[ev["cat"]].tolist(),
            _PRODUCT_IDS[ev["product"]].tolist(), ev["qty"].tolist(), _CHANS[ev["channel"]].tolist())
    out = [{"customer_id": a, "ts": b, "amount": x, "category": d, "product_id": e, "quantity": f, "channel": g}
           for a, b, x, d, e, f, g in zip(*cols, strict=True)]
    if store_ids is not None and "store" in ev:  # simulator/stores.py: the purchase's store and promotion flag
        for doc, store_id, promo in zip(out, store_ids[ev["store"]].tolist(), ev["promo"].tolist(), strict=True):
            doc["store_id"] = store_id
            doc["promo"] = promo
    if "rating" in ev:  # only rated purchases carry the field
        rated = np.flatnonzero(~np.isnan(ev["rating"]))
        for i, r in zip(rated.tolist(), ev["rating"][rated].tolist(), strict=True):
            out[i]["rating"] = r
    return out


def _customer_dicts(c: dict[str, np.ndarray], lo: int, hi: int, ids: list[str], end: dt.datetime,
                    horizon_days: int) -> list[dict]:
    s = slice(lo, hi)
    end64 = np.datetime64(end, "us")
    signup = (end64 + c["signup"][s].astype("timedelta64[s]")).tolist()
    churn = c["churn"][s]
    churned = churn <= 0
    churned_at = (end64 + np.minimum(churn, 0).astype("timedelta64[s]")).tolist()
    prob = np.where(churned, 1.0, 1.0 - np.exp(-c["hazard"][s] * horizon_days / 30.0))
    miss = c["missing"][s].tolist()
    fields = (c["age"][s].tolist(), c["income"][s].tolist(), _REGS[c["region"][s]].tolist(),
              _CHANS[c["channel"][s]].tolist(), c["tickets"][s].tolist(), c["observed"][s].tolist())
    truth = zip(_NAMES[c["persona"][s]].tolist(), c["sat"][s].tolist(), c["hazard"][s].tolist(),
                c["rate"][s].tolist(), churned.tolist(), churned_at, prob.tolist(), strict=True)
    out = []
    for i, (cid, m, v, tr) in enumerate(zip(ids, miss, zip(*fields, strict=True), truth, strict=True)):
        out.append({"_id": cid, "customer_id": cid, "age": None if m[0] else v[0],
                    "income": None if m[1] else v[1], "region": None if m[2] else v[2],
                    "channel": None if m[3] else v[3], "signup_date": signup[i],
                    "support_tickets": None if m[4] else v[4], "customer_satisfaction": None if m[5] else v[5],
                    "_truth": {"persona": tr[0], "satisfaction": tr[1], "churn_hazard": tr[2],
                               "purchase_rate": tr[3], "churned_at": tr[5] if tr[4] else None,
                               "churn_probability": tr[6]}})
    return out


def _resolve_end(end: dt.datetime | None) -> dt.datetime:
    if end is None:
        now = dt.datetime.now(dt.UTC)
        return dt.datetime(now.year, now.month, now.day)
    return end.replace(microsecond=0)


def simulate(config: SimulationConfig, batch_size: int = 5000) -> Iterator[SimulatedBatch]:
    """Simulate customers and their purchase events in batches.

    Parameters
    ----------
    config : SimulationConfig
        Simulation settings (validated eagerly).
    batch_size : int
        Maximum number of customers per yielded batch; output is identical for
        any ``batch_size``.

    Returns
    -------
    Iterator[SimulatedBatch]
        Batches in customer-id order, each holding ALL events of its customers
        (grouped by customer, sorted by ``ts`` within a customer).

    Raises
    ------
    ValueError
        If the configuration or ``batch_size`` is invalid.
    """
    config.validate()
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}; pass e.g. 5000")
    end = _resolve_end(config.end)
    cust = _draw_customers(np.random.default_rng(config.seed), config.n_customers, False,
                           config.missing_rate, config.outlier_rate)
    if config.products:
        cust.update(products.draw_tastes(config.seed, cust["persona"]))
    shops = stores.ShopNetwork(config.stores, len(_PRODUCT_IDS), config.days, config.seed) if config.stores else None
    return _iter_batches(config, int(batch_size), end, cust, shops)


def _iter_batches(config: SimulationConfig, batch_size: int, end: dt.datetime,
                  cust: dict[str, np.ndarray], shops: stores.ShopNetwork | None = None) -> Iterator[SimulatedBatch]:
    n = config.n_customers
    end64 = np.datetime64(end, "s")
    cache: dict[int, dict[str, np.ndarray]] = {}
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        parts = []
        for b in range(lo // _BLOCK, (hi - 1) // _BLOCK + 1):
            if b not in cache:
                cache = {b: _block_events(cust, b * _BLOCK, min((b + 1) * _BLOCK, n), config.seed, b,
                                          config.days, config.outlier_rate)}
                if config.products:
                    products.choose_products(cache[b], cust, config.seed, b)
                if shops is not None:
                    first, last = b * _BLOCK, min((b + 1) * _BLOCK, n)
                    home = shops.home_stores(_REGS[cust["region"][first:last]], b)
                    shops.place(cache[b], home, first, personas.CHANNELS.index("store"))
            ev = cache[b]
            a, z = np.searchsorted(ev["idx"], [lo, hi])
            parts.append({k: v[a:z] for k, v in ev.items()})
        ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        ids = [f"{config.id_prefix}{i:07d}" for i in range(lo + 1, hi + 1)]
        ev_ids = [ids[i] for i in (ev["idx"] - lo).tolist()]
        customers = _customer_dicts(cust, lo, hi, ids, end, config.horizon_days)
        if config.products:
            for c, extra in zip(customers, products.truth_fields(cust, lo, hi), strict=True):
                c["_truth"].update(extra)
        yield SimulatedBatch(customers=customers,
                             events=_event_dicts(ev_ids, ev, end64 + ev["t"].astype("timedelta64[s]"),
                                                 None if shops is None else shops.store_ids))


def simulate_stream_tick(rng: np.random.Generator, now: dt.datetime, n_new: int, existing_ids: Sequence[str],
                         n_events: int, id_offset: int, id_prefix: str = "S", *, horizon_days: int = 90,
                         missing_rate: float = 0.02, outlier_rate: float = 0.01) -> SimulatedBatch:
    """Simulate one tick of the live stream: new signups plus purchases of existing customers.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (advanced in place).
    now : datetime.datetime
        Naive UTC tick time; new customers have ``signup_date == now``, tenure 0,
        no events and ``support_tickets == 0``.
    n_new, n_events : int
        Number of new customers and of purchase events.  Events belong to
        uniformly drawn ``existing_ids`` (non-empty if ``n_events > 0``), have
        ``ts`` in the last second before ``now`` and category/amount drawn from
        the population mix (their persona is unknown).
    existing_ids : Sequence[str]
        Ids of customers who may purchase.
    id_offset : int
        New ids are ``f"{id_prefix}{id_offset + i:07d}"`` for ``i = 1..n_new``.
    id_prefix : str
        Prefix of new customer ids.
    horizon_days, missing_rate, outlier_rate : int, float, float
        As in :class:`SimulationConfig`.

    Returns
    -------
    SimulatedBatch
        New customers and the events (grouped by customer, sorted by ``ts``).

    Raises
    ------
    ValueError
        On negative counts, a timezone-aware ``now`` or events without customers.
    """
    for name, v in (("n_new", n_new), ("n_events", n_events), ("id_offset", id_offset)):
        if not _is_int(v) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}; pass a non-negative integer")
    if not isinstance(now, dt.datetime) or now.tzinfo is not None:
        raise ValueError(f"now must be a naive UTC datetime, got {now!r}; drop tzinfo after converting to UTC")
    if n_events > 0 and len(existing_ids) == 0:
        raise ValueError(f"existing_ids must be non-empty when n_events > 0, got n_events={n_events}; pass ids")
    cust = _draw_customers(rng, int(n_new), True, missing_rate, outlier_rate)
    ids = [f"{id_prefix}{id_offset + i:07d}" for i in range(1, n_new + 1)]
    customers = _customer_dicts(cust, 0, int(n_new), ids, now, horizon_days)
    m = int(n_events)
    owner = rng.integers(0, max(len(existing_ids), 1), m)
    p = rng.choice(len(personas.PERSONAS), size=m, p=_P["weight"])
    mix = _P["category_alpha"][p] / _P["category_alpha"][p].sum(axis=1, keepdims=True)
    home = personas.draw_choice(rng, _P["channel_probs"][p])
    ev = personas.draw_items(rng, mix, _P["basket_mean"][p], _P["price_level"][p], home, outlier_rate)
    ts = (np.datetime64(now, "us") - np.ceil(rng.random(m) * 1e6).astype("timedelta64[us]")).astype("datetime64[s]")
    order = np.lexsort((ts, owner))
    ev = {k: v[order] for k, v in ev.items()}
    owners = [existing_ids[i] for i in owner[order].tolist()]
    return SimulatedBatch(customers=customers, events=_event_dicts(owners, ev, ts[order]))
