"""Stand-ins for the models issue's ProductionModels, deterministic and fast, for the scorer tests."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field

from custscore.scorer.writeback import doc_hash as document_hash
from custscore.store.schema import EVENTS

VERSIONS = {"churn": "c1", "satisfaction": "s1", "segment": "g1"}


@dataclass
class CustomerScore:
    """Same fields as custscore.models.predict.CustomerScore."""

    customer_id: str
    input_version: str
    score: dict
    shap: dict
    features: dict
    error: str | None = None


def event_counts(store, ids: list) -> Counter:
    """customer_id -> number of stored events."""
    return Counter(e["customer_id"] for e in store.collection(EVENTS).find({"customer_id": {"$in": ids}},
                                                                           {"customer_id": 1}))


def input_version(doc: dict, n_events: int) -> str:
    """What the fake models report as the input version of ``doc``."""
    return f"{document_hash(doc)}:{n_events}"


@dataclass
class FakeModels:
    """Scores from a hash of the input; ``sleep_s`` per batch makes "mid-batch" observable."""

    versions: dict = field(default_factory=lambda: dict(VERSIONS))
    sleep_s: float = 0.0
    fail: dict = field(default_factory=dict)  # customer_id -> error reason (CustomerScore.error)
    explode: set = field(default_factory=set)  # customer ids whose presence makes score_batch raise
    batches: list = field(default_factory=list)  # sizes of the batches scored

    def score_batch(self, store, customers: list[dict], now: dt.datetime) -> list[CustomerScore]:
        if self.explode & {c["_id"] for c in customers}:
            raise RuntimeError("model blew up")
        counts = event_counts(store, [c["_id"] for c in customers])
        return self._score(customers, counts, {c["_id"]: input_version(c, counts[c["_id"]]) for c in customers})

    def _score(self, customers: list[dict], counts: Counter, versions: dict) -> list[CustomerScore]:
        self.batches.append(len(customers))
        out = []
        for doc in customers:
            cid = doc["_id"]
            version = versions[cid]
            x = int(version[:8], 16) / 0xFFFFFFFF
            tickets = doc.get("support_tickets") or 0
            orders = (doc.get("purchase_history") or {}).get("orders", 0)
            score = {
                "model_versions": dict(self.versions),
                "churn_probability": round(x, 4),
                "risk": "high" if x > 0.66 else "medium" if x > 0.33 else "low",
                "satisfaction": round(1 + 9 * (1 - x), 2),
                "segment": int(x * 4),
                "segment_name": f"segment {int(x * 4)}",
                "reasons": [{"feature": "support_tickets", "value": tickets, "contribution": 0.1,
                             "sentence": f"{tickets} support tickets raise the churn risk"}],
            }
            shap = {"churn": {"support_tickets": 0.1, "orders": -0.05}, "satisfaction": {"orders": 0.2}}
            features = {"support_tickets": float(tickets), "orders": float(orders), "events": counts[cid]}
            out.append(CustomerScore(cid, version, score, shap, features, self.fail.get(cid)))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return out


@dataclass
class EventFakeModels(FakeModels):
    """FakeModels that score given event documents, as the production models do (``score_documents``, the
    real input versions): the worker reads a batch's events once and skips customers whose inputs are unchanged."""

    def score_documents(self, customers: list[dict], events: list[dict], now: dt.datetime,
                        skip_shap: tuple = ()) -> list[CustomerScore]:
        from custscore.models.input_version import input_versions

        if self.explode & {c["_id"] for c in customers}:
            raise RuntimeError("model blew up")
        counts = Counter(e["customer_id"] for e in events)
        return self._score(customers, counts, input_versions(customers, events))


class FakeRegistry:
    """The promoted versions, changeable by a test: ``loader`` and ``probe`` for the Worker."""

    def __init__(self, versions: dict | None = None, **model_kwargs):
        self.versions = dict(versions or VERSIONS)
        self.model_kwargs = model_kwargs
        self.loads = 0

    def loader(self, store) -> FakeModels:
        self.loads += 1
        return FakeModels(versions=dict(self.versions), **self.model_kwargs)

    def probe(self, store) -> dict:
        return dict(self.versions)


def open_embedded(path):
    """An embedded store at ``path`` (a file), schema ensured."""
    from custscore.config import Settings
    from custscore.store import open_store

    return open_store(Settings.build(mongo_uri=f"embedded:{path}", home=path.parent, environ={}))


def simulate(store, n: int, seed: int = 1, prefix: str = "C") -> list[str]:
    """Store ``n`` simulated customers with a couple of months of events; return their ids."""
    from custscore.simulator.generate import SimulationConfig
    from custscore.simulator.run import run_simulation

    run_simulation(store, SimulationConfig(n_customers=n, seed=seed, days=60, id_prefix=prefix))
    return [f"{prefix}{i:07d}" for i in range(1, n + 1)]


def purchase(customer_id: str, amount: float = 20.0, when: dt.datetime | None = None) -> dict:
    """A purchase event document for ``load_events``."""
    ts = when or dt.datetime(2025, 1, 2, 3, 4, 5)
    return {"customer_id": customer_id, "ts": ts, "amount": amount, "category": "books", "quantity": 1}
