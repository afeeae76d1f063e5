"""Latent customer personas used by the synthetic data simulator.

Each :class:`Persona` bundles the parameters of one latent customer segment:
demographics (age, income), acquisition (channel, region, signup recency),
purchase behaviour (rate, basket size, price level, category preferences) and
experience (price sensitivity, base satisfaction, support ticket rate).

The five personas in :data:`PERSONAS` are deliberately distinct on behavioural
features (purchase frequency, basket size, unit price / spend, category mix and
tenure) so that an unsupervised clustering of customer behaviour can recover
them, while individual-level noise (per-customer Dirichlet category mixes,
gamma-distributed purchase rates, overlapping demographics) keeps the task
non-trivial.

Module constants
----------------
CHANNELS : tuple of str
    Acquisition / purchase channels.
REGIONS : tuple of str
    Customer regions.
CATEGORIES : tuple of str
    Product categories.
CATEGORY_BASE_PRICE : tuple of float
    Typical unit price of an item in each category (aligned with CATEGORIES),
    before the persona price level multiplier is applied.
N_PRODUCTS, PRODUCT_IDS : int, tuple of str
    Catalogue: ``N_PRODUCTS`` products per category with ids such as
    ``"electronics-0042"`` (index ``category * N_PRODUCTS + rank``); product
    popularity is Zipf-like (weight ``1 / rank**1.1``) within a category.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

CHANNELS: tuple[str, ...] = ("web", "mobile", "store")
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
CATEGORIES: tuple[str, ...] = ("electronics", "fashion", "home", "grocery", "beauty", "sports", "books", "toys")
CATEGORY_BASE_PRICE: tuple[float, ...] = (180.0, 45.0, 60.0, 12.0, 22.0, 55.0, 15.0, 28.0)
N_PRODUCTS = 500
PRODUCT_IDS: tuple[str, ...] = tuple(f"{c}-{k:04d}" for c in CATEGORIES for k in range(1, N_PRODUCTS + 1))
_POPULARITY_CDF = np.cumsum(1.0 / np.arange(1, N_PRODUCTS + 1) ** 1.1)
_POPULARITY_CDF /= _POPULARITY_CDF[-1]


@dataclass(frozen=True)
class Persona:
    """Parameters of one latent customer segment.

    Attributes
    ----------
    name : str
        Persona identifier (stored as ground truth on simulated customers).
    weight : float
        Population share; the weights of :data:`PERSONAS` sum to 1.
    age_mean, age_sd : float
        Normal distribution of age in years (clipped to [18, 90] when drawn).
    log_income_mean, log_income_sd : float
        Log-normal distribution of annual income.
    channel_probs : tuple of float
        Probabilities over :data:`CHANNELS`.
    region_probs : tuple of float
        Probabilities over :data:`REGIONS` (the persona's regional tilt).
    purchase_rate_30d : float
        Expected number of purchases per 30 days of activity.
    basket_mean : float
        Mean quantity per purchase (quantity is ``1 + Poisson(basket_mean - 1)``).
    price_level : float
        Multiplier applied to :data:`CATEGORY_BASE_PRICE` for unit prices.
    category_alpha : tuple of float
        Dirichlet concentration over :data:`CATEGORIES`; each customer draws
        its own category mix from it.
    price_sensitivity : float
        Mean price sensitivity in [0, 1].
    base_satisfaction : float
        Baseline satisfaction on the 1-10 scale.
    tickets_per_year : float
        Mean support-ticket propensity (tickets per active year).
    signup_recency : float
        ``r`` in the signup-age draw ``3 years * Beta(2, 2 r)`` (mean fraction
        ``1 / (1 + r)``): ``r > 1`` skews towards recent signups, ``r < 1``
        towards long-standing customers.
    """

    name: str
    weight: float
    age_mean: float
    age_sd: float
    log_income_mean: float
    log_income_sd: float
    channel_probs: tuple[float, ...]
    region_probs: tuple[float, ...]
    purchase_rate_30d: float
    basket_mean: float
    price_level: float
    category_alpha: tuple[float, ...]
    price_sensitivity: float
    base_satisfaction: float
    tickets_per_year: float
    signup_recency: float


PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="loyal_high_value",
        weight=0.18,
        age_mean=46.0,
        age_sd=11.0,
        log_income_mean=11.35,
        log_income_sd=0.40,
        channel_probs=(0.45, 0.25, 0.30),
        region_probs=(0.22, 0.15, 0.18, 0.20, 0.25),
        purchase_rate_30d=3.2,
        basket_mean=1.6,
        price_level=1.7,
        category_alpha=(4.5, 0.6, 3.0, 0.3, 0.4, 0.8, 0.5, 0.3),
        price_sensitivity=0.15,
        base_satisfaction=8.2,
        tickets_per_year=0.8,
        signup_recency=0.5,
    ),
    Persona(
        name="bargain_hunter",
        weight=0.25,
        age_mean=37.0,
        age_sd=12.0,
        log_income_mean=10.45,
        log_income_sd=0.45,
        channel_probs=(0.30, 0.55, 0.15),
        region_probs=(0.15, 0.28, 0.20, 0.17, 0.20),
        purchase_rate_30d=2.2,
        basket_mean=3.8,
        price_level=0.55,
        category_alpha=(0.2, 1.2, 0.6, 4.5, 2.5, 0.3, 0.3, 0.4),
        price_sensitivity=0.85,
        base_satisfaction=6.4,
        tickets_per_year=1.0,
        signup_recency=1.0,
    ),
    Persona(
        name="occasional",
        weight=0.27,
        age_mean=51.0,
        age_sd=14.0,
        log_income_mean=10.8,
        log_income_sd=0.45,
        channel_probs=(0.35, 0.15, 0.50),
        region_probs=(0.20, 0.20, 0.25, 0.20, 0.15),
        purchase_rate_30d=0.7,
        basket_mean=1.2,
        price_level=1.0,
        category_alpha=(0.3, 0.5, 1.5, 0.5, 0.4, 0.8, 4.0, 0.4),
        price_sensitivity=0.45,
        base_satisfaction=6.9,
        tickets_per_year=0.35,
        signup_recency=0.8,
    ),
    Persona(
        name="new_explorer",
        weight=0.15,
        age_mean=27.0,
        age_sd=6.0,
        log_income_mean=10.6,
        log_income_sd=0.40,
        channel_probs=(0.25, 0.65, 0.10),
        region_probs=(0.18, 0.17, 0.20, 0.30, 0.15),
        purchase_rate_30d=2.4,
        basket_mean=1.4,
        price_level=1.0,
        category_alpha=(0.6, 3.5, 0.4, 0.3, 1.2, 2.5, 0.4, 0.4),
        price_sensitivity=0.5,
        base_satisfaction=7.3,
        tickets_per_year=0.6,
        signup_recency=4.0,
    ),
    Persona(
        name="at_risk",
        weight=0.15,
        age_mean=41.0,
        age_sd=13.0,
        log_income_mean=10.7,
        log_income_sd=0.45,
        channel_probs=(0.45, 0.35, 0.20),
        region_probs=(0.25, 0.22, 0.15, 0.13, 0.25),
        purchase_rate_30d=2.5,
        basket_mean=2.0,
        price_level=0.9,
        category_alpha=(1.0, 0.4, 0.8, 0.4, 0.3, 0.5, 0.3, 4.0),
        price_sensitivity=0.65,
        base_satisfaction=3.9,
        tickets_per_year=3.5,
        signup_recency=2.5,
    ),
)


def persona_table() -> dict[str, np.ndarray]:
    """Stack persona parameters into numpy arrays indexed by persona number.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per numeric :class:`Persona` field, shape ``(n_personas,)``
        for scalars and ``(n_personas, k)`` for vector fields (``channel_probs``,
        ``region_probs``, ``category_alpha``).
    """
    names = [f.name for f in fields(Persona) if f.name != "name"]
    return {f: np.array([getattr(p, f) for p in PERSONAS], dtype=float) for f in names}


def draw_choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row of an ``(m, k)`` matrix of (unnormalised) probabilities.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    probs : numpy.ndarray
        Non-negative weights, one row per draw.

    Returns
    -------
    numpy.ndarray
        Integer indices in ``[0, k)``, shape ``(m,)``.
    """
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def draw_items(rng: np.random.Generator, mix: np.ndarray, basket: np.ndarray, price_level: np.ndarray,
               home_channel: np.ndarray, outlier_rate: float) -> dict[str, np.ndarray]:
    """Draw what each purchase event buys (vectorised, one row per event).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    mix : numpy.ndarray
        ``(m, len(CATEGORIES))`` category probabilities of each event's buyer.
    basket, price_level : numpy.ndarray
        Buyer's mean quantity (>= 1) and unit price multiplier, shape ``(m,)``.
    home_channel : numpy.ndarray
        Buyer's channel index, used with probability 0.8 (else a random channel).
    outlier_rate : float
        Probability that an amount is multiplied by 10..30.

    Returns
    -------
    dict of str to numpy.ndarray
        ``cat`` (category index), ``product`` (index into PRODUCT_IDS), ``qty``
        (``1 + Poisson(basket - 1)``), ``amount`` (quantity * log-normal unit
        price around ``CATEGORY_BASE_PRICE * price_level``, rounded to cents,
        >= 0.01) and ``channel`` (channel index).
    """
    m = len(basket)
    cat = draw_choice(rng, mix)
    rank = np.minimum(np.searchsorted(_POPULARITY_CDF, rng.random(m), side="right"), N_PRODUCTS - 1)
    qty = 1 + rng.poisson(basket - 1.0)
    unit = np.asarray(CATEGORY_BASE_PRICE)[cat] * price_level * rng.lognormal(0.0, 0.35, m)
    amount = qty * unit * np.where(rng.random(m) < outlier_rate, rng.uniform(10.0, 30.0, m), 1.0)
    chan = np.where(rng.random(m) < 0.8, home_channel, rng.integers(0, len(CHANNELS), m))
    return {"cat": cat, "product": cat * N_PRODUCTS + rank, "qty": qty,
            "amount": np.maximum(np.round(amount, 2), 0.01), "channel": chan}


def _check_personas() -> None:
    """Sanity-check the persona table at import time (cheap)."""
    total = sum(p.weight for p in PERSONAS)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"persona weights must sum to 1, got {total}")
    for p in PERSONAS:
        if len(p.channel_probs) != len(CHANNELS) or abs(sum(p.channel_probs) - 1) > 1e-9:
            raise ValueError(f"persona {p.name}: channel_probs must be a distribution over CHANNELS")
        if len(p.region_probs) != len(REGIONS) or abs(sum(p.region_probs) - 1) > 1e-9:
            raise ValueError(f"persona {p.name}: region_probs must be a distribution over REGIONS")
        if len(p.category_alpha) != len(CATEGORIES) or min(p.category_alpha) <= 0:
            raise ValueError(f"persona {p.name}: category_alpha must be positive, one per category")
        if not 0.0 <= p.price_sensitivity <= 1.0:
            raise ValueError(f"persona {p.name}: price_sensitivity must be in [0, 1]")


_check_personas()
