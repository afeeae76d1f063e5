"""The collections custscore uses and their indexes (ARCHITECTURE.md, "Documents")."""

from __future__ import annotations

from custscore.store.base import Store

CUSTOMERS = "customers"
EVENTS = "events"
PREDICTIONS = "predictions"
MODELS = "models"
DEAD_LETTERS = "dead_letters"
SCORER_STATE = "scorer_state"
MONITORING = "monitoring"  # drift summaries written by `custscore monitor`
FORECASTS = "forecasts"  # demand forecasts per series and period (forecast/production.py)
STOCK = "stock"  # on-hand quantity per product (and store), `custscore stock import` (forecast/stock.py)

COLLECTIONS = (CUSTOMERS, EVENTS, PREDICTIONS, MODELS, DEAD_LETTERS, SCORER_STATE, MONITORING, FORECASTS, STOCK)

# field -> unique?  (``_id`` is always indexed)
INDEXES: dict[str, dict[str, bool]] = {
    # score.as_of: the freshness sweep pages through scores oldest first (scorer/freshness.py);
    # score.models_key: a worker's start finds the scores of other model versions without reading every customer
    CUSTOMERS: {"updated_at": False, "region": False, "channel": False, "signup_date": False, "score.as_of": False,
                "score.models_key": False},
    EVENTS: {"customer_id": False, "ts": False, "ingested_at": False},
    PREDICTIONS: {"customer_id": False, "scored_at": False, "model_version": False},
    MODELS: {"task": False},
    DEAD_LETTERS: {"created_at": False, "customer_id": False},
    SCORER_STATE: {},
    MONITORING: {"created_at": False},
    FORECASTS: {"version": False, "key": False},
    STOCK: {},
}


# Watermarks for the polling change feed of a standalone mongod: the embedded store
# has its own sequence, so it skips these (they cost a third of the event load time).
POLLING_ONLY = {(EVENTS, "ingested_at")}


def ensure_schema(store: Store) -> None:
    """Create every collection's indexes; safe to call on every open, from any process."""
    for name in COLLECTIONS:
        coll = store.collection(name)
        existing = set(coll.index_fields())
        for field_name, unique in INDEXES[name].items():
            if store.backend != "mongodb" and (name, field_name) in POLLING_ONLY:
                continue
            if field_name not in existing:
                coll.create_index(field_name, unique=unique)
