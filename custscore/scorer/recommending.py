"""Recommendations in the scorer: the seam between ``ProductionModels`` and the recommender.

``models/predict.py`` does not know recommendations (the dependency direction is
scorer -> models, recommend). :class:`WithRecommendations` wraps whatever the worker
scores with (``versions`` + ``score_batch``), reads each batch's events *once* (with
product ids), hands them to the wrapped models' ``score_documents`` and adds
``score.recommendations`` - top N with score and reason - to every result. The
recommender's version joins ``model_versions``, so a newly promoted recommender
rescores everybody and a new purchase (it changes the customer document and its
events) refreshes that customer's list in the same micro-batch.

When no churn/satisfaction/segment model is promoted, the scorer still writes
recommendations (the other score fields stay empty).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd

from custscore.config import Settings
from custscore.models import feature_reads, features, input_version, registry
from custscore.models.few_features import FEW
from custscore.models.predict import HOT_PATH_NO_SHAP, CustomerScore, load_production, production_versions
from custscore.recommend.interactions import EVENT_COLUMNS, events_frame, segment_of
from custscore.recommend.serving import DEFAULT_N, Recommender
from custscore.recommend.train import TASK
from custscore.store.base import Store

log = logging.getLogger(__name__)


class WithRecommendations:
    """``ProductionModels`` (or None) plus a :class:`Recommender`, scoring like ``ProductionModels``."""

    def __init__(self, models: Any, recommender: Recommender, version: str, n: int = DEFAULT_N):
        self.models = models
        self.recommender = recommender
        self.n = n
        self.versions = {**(dict(models.versions) if models is not None else {}), TASK: version}

    def __getattr__(self, name: str) -> Any:  # threshold, risk, categories... of the wrapped models
        if name == "models" or self.__dict__.get("models") is None:
            raise AttributeError(name)
        return getattr(self.models, name)

    event_fields = tuple(dict.fromkeys((*features.EVENT_FIELDS, *EVENT_COLUMNS)))  # the features' and the recommender's

    def score_batch(self, store: Store, customers: list[dict], now: dt.datetime) -> list[CustomerScore]:
        """Score and recommend; one read of the batch's events (the worker's path: no SHAP on the hot path)."""
        ids = [str(c.get("_id", c.get("customer_id"))) for c in customers]
        raw = feature_reads.read_event_docs(store, ids, until=now, fields=self.event_fields)
        return self.score_documents(customers, raw, now, skip_shap=HOT_PATH_NO_SHAP)

    def score_documents(self, customers: list[dict], events: list[dict], now: dt.datetime,
                        **options: Any) -> list[CustomerScore]:
        """Score and recommend customers given their event documents (``predict``, ``explain``, the HTTP API)."""
        ids = [str(c.get("_id", c.get("customer_id"))) for c in customers]
        if self.models is not None:
            results = self.models.score_documents(customers, events, now, **options)
        else:
            versions = input_version.input_versions(customers, features.events_frame(events))
            results = [CustomerScore(cid, versions[cid], {}) for cid in ids]
        segments = {str(c.get("_id", c.get("customer_id"))): segment_of(c.get("age"), c.get("channel"))
                    for c in customers}
        # a few customers' plain documents go straight to the history matrix (pandas' fixed costs were ~20 ms)
        few = len(ids) <= FEW and not isinstance(events, pd.DataFrame)
        recs = self.recommender.recommend(ids, events if few else events_frame(events), segments, now, n=self.n)
        for r in results:
            if getattr(r, "error", None):
                continue
            r.score["model_versions"] = dict(self.versions)
            r.score["recommendations"] = recs.get(str(r.customer_id), [])
        return results


def scoring_versions(store: Store) -> dict[str, str]:
    """Promoted versions the worker serves: the supervised tasks plus ``recommend`` (the hot-reload probe)."""
    out = production_versions(store)
    version = registry.production_version(store, TASK)
    if version:
        out[TASK] = version
    return out


def load_scoring_models(store: Store, settings: Settings) -> Any:
    """``ProductionModels`` wrapped with the production recommender when one is promoted.

    Raises
    ------
    ModelError
        Neither a supervised model nor a recommender is promoted.
    """
    version = registry.production_version(store, TASK)
    only_recommend = version is not None and not production_versions(store)
    models = None if only_recommend else load_production(store, settings)
    if version is None:
        return models
    recommender = registry.load_model(store, settings, TASK, version).pipeline
    return WithRecommendations(models, recommender, version)


def production_worker(store: Store, settings: Settings, **options: Any) -> Any:
    """A scorer :class:`~custscore.scorer.worker.Worker` wired to the registry's production models and recommender.

    The one wiring of ``score --watch``/``--once`` and the demo; ``options`` go to the Worker (batch size, waits...).
    """
    from custscore.scorer.worker import Worker

    return Worker(store, lambda s: load_scoring_models(s, settings), scoring_versions, **options)
