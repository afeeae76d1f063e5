"""Simulated product catalogue, latent tastes, affinity-driven product choice and explicit ratings.

A separate, composable part of the simulator: :mod:`custscore.simulator.generate`
draws *when* a customer buys and *which category* (unchanged by this module), and
this module then decides *which product* of that category and whether the purchase
carries a rating. It uses its own random streams, so switching it on or off never
changes a customer's profile, events' times, categories, amounts or quantities -
the behaviour the churn, satisfaction and segment tasks learn from.

* **Catalogue** (:func:`make_catalogue`, fixed by the simulation seed): the ids of
  :data:`~custscore.simulator.personas.PRODUCT_IDS`; a list price ``CATEGORY_BASE_PRICE
  * LogNormal(0, 0.35)``; a long-tail popularity ``1 / rank**1.1`` within each category;
  latent factors ``V ~ N(0, 1)`` of dimension :data:`N_FACTORS`; a quality ``q ~ N(0, 0.35)``
  (ratings only). Event amounts keep the simulator's own price draw (so existing seeds keep
  their spend); the list price is the catalogue's.
* **Tastes** (:func:`draw_tastes`): ``taste = mu[persona] + N(0, TASTE_SD)``, with persona
  means ``mu ~ N(0, 1)`` drawn with the catalogue; a rating generosity ``g ~ N(0, 0.4)``.
* **Choice**: within the category of a purchase, product ``p`` has logit
  ``AFFINITY * taste . V_p / sqrt(N_FACTORS) + log popularity_p``. Repeatable categories
  (:data:`REPEATABLE`: groceries and beauty) are drawn with replacement (habits make
  repeats common); the others without replacement per customer and category
  (Plackett-Luce: the k-th purchase in a category takes the k-th of the Gumbel-perturbed
  logits), so nobody buys the same television twice.
* **Ratings**: a purchase carries ``rating`` with probability :data:`RATED_FRACTION`:
  ``clip(round_half(3.3 + g + q_p + 0.8 z + N(0, 0.45)), 1, 5)`` where ``z`` is the
  customer's affinity to the product, standardised.
* **Truth**: ``_truth.taste`` and ``_truth.category_mix`` with ``_truth.catalogue_seed``
  are enough for :func:`next_purchase_probabilities`, each customer's true distribution of
  the next purchase (the oracle of the recommendation leaderboard).

Reproducibility: tastes from ``default_rng([seed, 4099])``, the catalogue from
``default_rng([seed, 3571])``, choices and ratings per block of customers from
``default_rng([seed, 6271, block])``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from custscore.simulator import personas

__all__ = ["Catalogue", "N_FACTORS", "REPEATABLE", "RATED_FRACTION", "make_catalogue", "draw_tastes",
           "choose_products", "truth_fields", "next_purchase_probabilities", "oracle_scores"]

N_FACTORS = 8
AFFINITY = 1.7  # weight of taste . factors against the popularity prior
TASTE_SD = 0.5
RATED_FRACTION = 0.4
REPEATABLE: tuple[str, ...] = ("grocery", "beauty")
_TASTE_STREAM = 4099
_CATALOGUE_STREAM = 3571
_CHOICE_STREAM = 6271
_P = personas.N_PRODUCTS


@dataclass(frozen=True)
class Catalogue:
    """The simulated products, aligned with :data:`~custscore.simulator.personas.PRODUCT_IDS`."""

    product_ids: np.ndarray  # (P,) str
    category: np.ndarray  # (P,) category index
    price: np.ndarray  # (P,) list price
    log_popularity: np.ndarray  # (P,) log of the within-category popularity weight
    factors: np.ndarray  # (P, N_FACTORS)
    quality: np.ndarray  # (P,)
    persona_taste: np.ndarray  # (n_personas, N_FACTORS)
    repeatable: np.ndarray  # (P,) bool

    def logits(self, taste: np.ndarray) -> np.ndarray:
        """Within-category choice logits, shape ``(n, P)``, of customers with tastes ``(n, N_FACTORS)``."""
        return AFFINITY * (np.atleast_2d(taste) @ self.factors.T) / np.sqrt(N_FACTORS) + self.log_popularity


@functools.lru_cache(maxsize=8)
def make_catalogue(seed: int) -> Catalogue:
    """The catalogue of a simulation seed (cached; deterministic).

    Parameters
    ----------
    seed : int
        The simulation seed.

    Returns
    -------
    Catalogue
    """
    rng = np.random.default_rng([int(seed), _CATALOGUE_STREAM])
    n_cat = len(personas.CATEGORIES)
    category = np.repeat(np.arange(n_cat), _P)
    rank = np.tile(np.arange(1, _P + 1), n_cat)
    price = np.round(np.asarray(personas.CATEGORY_BASE_PRICE)[category] * rng.lognormal(0.0, 0.35, n_cat * _P), 2)
    factors = rng.standard_normal((n_cat * _P, N_FACTORS))
    quality = rng.normal(0.0, 0.35, n_cat * _P)
    persona_taste = rng.standard_normal((len(personas.PERSONAS), N_FACTORS))
    repeatable = np.isin(np.asarray(personas.CATEGORIES, dtype=object)[category], REPEATABLE)
    return Catalogue(np.asarray(personas.PRODUCT_IDS, dtype=object), category, price, -1.1 * np.log(rank), factors,
                     quality, persona_taste, repeatable)


def draw_tastes(seed: int, persona: np.ndarray) -> dict[str, np.ndarray]:
    """Per-customer taste vectors and rating generosity (own random stream; the customers' draws are untouched).

    Parameters
    ----------
    seed : int
        The simulation seed.
    persona : numpy.ndarray
        Persona index of each customer, shape ``(n,)``.

    Returns
    -------
    dict
        ``taste`` ``(n, N_FACTORS)``, ``generosity`` ``(n,)`` and ``catalogue_seed`` ``(n,)``.
    """
    rng = np.random.default_rng([int(seed), _TASTE_STREAM])
    n = len(persona)
    mu = make_catalogue(seed).persona_taste[persona]
    return {"taste": mu + TASTE_SD * rng.standard_normal((n, N_FACTORS)), "generosity": rng.normal(0.0, 0.4, n),
            "catalogue_seed": np.full(n, int(seed), dtype=np.int64)}


def _within(cat: np.ndarray) -> slice:
    return slice(int(cat) * _P, (int(cat) + 1) * _P)


def choose_products(ev: dict[str, np.ndarray], cust: dict[str, np.ndarray], seed: int, block: int) -> None:
    """Replace ``ev["product"]`` by affinity-driven choices and add ``ev["rating"]`` (NaN = not rated), in place.

    Parameters
    ----------
    ev : dict
        A block's events: ``idx`` (customer index, sorted), ``t``, ``cat``, ``product``...
    cust : dict
        Customer arrays including ``taste`` and ``generosity`` from :func:`draw_tastes`.
    seed, block : int
        The simulation seed and the block number (the random stream of this block).
    """
    rng = np.random.default_rng([int(seed), _CHOICE_STREAM, int(block)])
    cat_ = make_catalogue(seed)
    idx, cat = ev["idx"], ev["cat"]
    m = len(idx)
    product = np.zeros(m, dtype=np.int64)
    if m:
        # one group per (customer, category); events are in (customer, time) order, kept within a group
        key = idx.astype(np.int64) * len(personas.CATEGORIES) + cat
        order = np.lexsort((np.arange(m), key))
        sk = key[order]
        first = np.r_[True, sk[1:] != sk[:-1]]
        group_sorted = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        rank_sorted = np.arange(m) - starts[group_sorted]  # k-th purchase of the customer in the category
        group, rank = np.empty(m, np.int64), np.empty(m, np.int64)
        group[order], rank[order] = group_sorted, rank_sorted
        g_cat, g_cust = cat[order[starts]], idx[order[starts]]
        for c in np.unique(g_cat).tolist():
            s = _within(c)
            gs = np.flatnonzero(g_cat == c)
            logits = AFFINITY * (cust["taste"][g_cust[gs]] @ cat_.factors[s].T) / np.sqrt(N_FACTORS)
            logits += cat_.log_popularity[s]
            rows = np.flatnonzero(np.isin(group, gs))
            local = np.searchsorted(gs, group[rows])  # row of each event's group in `logits`
            if cat_.repeatable[s.start]:  # with replacement: inverse-CDF draw from the softmax
                w = np.exp(logits - logits.max(axis=1, keepdims=True))
                cdf = np.cumsum(w, axis=1)
                cdf /= cdf[:, -1:]
                flat = (cdf + np.arange(len(gs))[:, None]).ravel()
                hit = np.searchsorted(flat, local + rng.random(len(rows)) * (1 - 1e-12), side="right")
                chosen = np.minimum(hit - local * _P, _P - 1)
            else:  # without replacement: the k-th of one Gumbel-perturbed ordering per group (Plackett-Luce)
                keys = -(logits + rng.gumbel(size=logits.shape))
                k = min(int(rank[rows].max()) + 1, _P)
                top = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < _P else np.argsort(keys, axis=1)
                top = np.take_along_axis(top, np.argsort(np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
                chosen = top[local, np.minimum(rank[rows], k - 1)]
            product[rows] = s.start + chosen
    ev["product"] = product
    rated = rng.random(m) < RATED_FRACTION
    taste = cust["taste"][idx]
    z = np.einsum("ij,ij->i", taste, cat_.factors[product]) / np.sqrt(N_FACTORS) / np.sqrt(1.0 + TASTE_SD ** 2)
    raw = 3.0 + cust["generosity"][idx] + cat_.quality[product] + 1.0 * z + rng.normal(0.0, 0.4, m)
    ev["rating"] = np.where(rated, np.clip(np.round(raw * 2.0) / 2.0, 1.0, 5.0), np.nan)


def truth_fields(cust: dict[str, np.ndarray], lo: int, hi: int) -> list[dict]:
    """The ``_truth`` entries this module adds for customers ``lo..hi-1`` (plain Python values)."""
    taste = np.round(cust["taste"][lo:hi], 5).tolist()
    mix = np.round(cust["mix"][lo:hi], 6).tolist()
    seeds = cust["catalogue_seed"][lo:hi].tolist()
    return [{"taste": t, "category_mix": x, "catalogue_seed": s} for t, x, s in zip(taste, mix, seeds, strict=True)]


def next_purchase_probabilities(taste: Sequence[float], category_mix: Sequence[float], catalogue_seed: int,
                                bought: Sequence[int] = ()) -> np.ndarray:
    """The true probability of each catalogue product being a customer's next purchase.

    Parameters
    ----------
    taste, category_mix : sequence of float
        ``_truth.taste`` and ``_truth.category_mix`` of a simulated customer.
    catalogue_seed : int
        ``_truth.catalogue_seed``.
    bought : sequence of int
        Catalogue indices already bought; non-repeatable ones cannot be bought again.

    Returns
    -------
    numpy.ndarray
        Shape ``(P,)``, summing to 1 (0 for products that cannot be bought).
    """
    cat_ = make_catalogue(int(catalogue_seed))
    logits = cat_.logits(np.asarray(taste, dtype=float))[0]
    gone = np.zeros(len(logits), dtype=bool)
    b = np.asarray(list(bought), dtype=np.int64)
    if b.size:
        gone[b[~cat_.repeatable[b]]] = True
    w = np.where(gone, 0.0, np.exp(logits - logits.max()))
    mix = np.asarray(category_mix, dtype=float)
    out = np.zeros(len(w))
    for c in range(len(mix)):
        s = _within(c)
        total = w[s].sum()
        if total > 0:
            out[s] = mix[c] * w[s] / total
    return out / out.sum() if out.sum() > 0 else out


def oracle_scores(truth: dict, bought: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """True next-purchase probabilities of a simulated customer, by product id (the leaderboard's oracle).

    Parameters
    ----------
    truth : dict
        The customer's ``_truth`` (needs ``taste``, ``category_mix`` and ``catalogue_seed``).
    bought : sequence of str
        Product ids bought so far (only the past the models see).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Product ids and probabilities; empty arrays when ``truth`` has no tastes (not simulated
        with products).
    """
    if not truth or truth.get("taste") is None or truth.get("category_mix") is None:
        return np.array([], dtype=object), np.array([])
    cat_ = make_catalogue(int(truth.get("catalogue_seed", 0)))
    where = _product_index()
    cols = [where[b] for b in bought if b in where]
    probs = next_purchase_probabilities(truth["taste"], truth["category_mix"], int(truth.get("catalogue_seed", 0)),
                                        cols)
    return cat_.product_ids, probs


@functools.cache
def _product_index() -> dict[str, int]:
    return {p: i for i, p in enumerate(personas.PRODUCT_IDS)}
