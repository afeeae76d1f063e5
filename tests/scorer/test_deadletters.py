"""Documents written around custscore's validation land in dead_letters with a reason; the rest are scored."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custscore.config import Settings
from custscore.scorer.deadletters import list_dead_letters
from custscore.scorer.retry import retry_dead_letters
from custscore.scorer.worker import Worker
from custscore.store import open_store
from custscore.store.schema import CUSTOMERS, DEAD_LETTERS
from tests.scorer.fakes import FakeModels, FakeRegistry

GOOD = {"signup_date": dt.datetime(2023, 5, 1), "age": 40, "income": 52000.0, "region": "north",
        "channel": "web", "support_tickets": 1, "customer_satisfaction": 7}

junk = st.recursive(st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", min_size=1), inner,
                                                                                max_size=2), max_leaves=5)
# (field, bad value): each breaks one rule ingest enforces
BREAKAGES = st.one_of(
    st.tuples(st.sampled_from(["signup_date", "customer_id"]), st.just(None)),  # missing required field
    st.tuples(st.just("signup_date"), st.just(float("nan"))),  # NaN where none is allowed
    st.tuples(st.just("age"), st.integers(121, 10_000) | st.integers(-10_000, -1)),  # absurd age
    st.tuples(st.just("income"), st.floats(-1e9, -0.01)),  # negative income
    st.tuples(st.sampled_from(["age", "support_tickets"]), st.text(alphabet="xyz", min_size=1, max_size=4)),
    st.tuples(st.just("region"), st.floats(allow_nan=False) | st.booleans()),  # wrong type
    st.tuples(st.sampled_from(["age", "income", "signup_date"]), junk.filter(lambda v: isinstance(v, list | dict))),
    st.tuples(st.just("purchase_history"), st.just({"orders": "many"})),
    st.tuples(st.just("customer_satisfaction"), st.just(math.inf)),
)


def _doc(i: int, breakage: tuple | None) -> dict:
    cid = f"{'B' if breakage else 'G'}{i:04d}"
    doc = {"_id": cid, "customer_id": cid, **GOOD}
    if breakage:
        field, value = breakage
        if value is None:
            doc.pop(field)
        else:
            doc[field] = value
    return doc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.lists(BREAKAGES, min_size=1, max_size=6), n_good=st.integers(1, 6))
def test_malformed_documents_become_dead_letters_and_good_ones_are_scored(tmp_path_factory, bad, n_good):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path_factory.mktemp("dl"), environ={}))
    docs = [_doc(i, b) for i, b in enumerate(bad)] + [_doc(i, None) for i in range(n_good)]
    store.collection(CUSTOMERS).insert_many(docs[::2] + docs[1::2])  # interleaved
    registry = FakeRegistry()

    stats = Worker(store, registry.loader, registry.probe, batch_size=4).run_once()

    letters = list_dead_letters(store, limit=0)
    assert sorted(d["doc_id"] for d in letters) == sorted(d["_id"] for d in docs[: len(bad)])
    assert all(d["reason"] and d["document"]["_id"] == d["doc_id"] for d in letters)
    scored = {d["_id"] for d in store.collection(CUSTOMERS).find({"score": {"$exists": True}})}
    assert scored == {d["_id"] for d in docs[len(bad):]}
    assert stats.dead_letters == len(bad)
    store.close()


def _memory_store(tmp_path):
    return open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))


def test_the_same_bad_document_is_recorded_once_and_retry_scores_it_once_fixed(tmp_path):
    store = _memory_store(tmp_path)
    store.collection(CUSTOMERS).insert_many([_doc(1, ("age", 500)), _doc(2, ("region", 3.5)), _doc(3, None)])
    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe).run_once()
    Worker(store, registry.loader, registry.probe).run_once()  # the restart scan sees them again
    assert store.collection(DEAD_LETTERS).count() == 2
    [age] = [d for d in list_dead_letters(store) if d["customer_id"] == "B0001"]
    assert "age=500" in age["reason"] and "out of range" in age["reason"]

    store.collection(CUSTOMERS).update_one({"_id": "B0001"}, {"$set": {"age": 50}})
    report = retry_dead_letters(store, FakeModels())

    assert (report.scored, report.still_bad, report.gone) == (1, 1, 0)
    assert store.collection(CUSTOMERS).find_one({"_id": "B0001"})["score"]["risk"]
    [left] = list_dead_letters(store)
    assert left["customer_id"] == "B0002" and left["attempts"] == 1


def test_model_errors_and_exceptions_dead_letter_one_customer_not_the_batch(tmp_path):
    store = _memory_store(tmp_path)
    store.collection(CUSTOMERS).insert_many([_doc(i, None) for i in range(8)])
    registry = FakeRegistry(fail={"G0002": "income is needed by the churn model"}, explode={"G0005"})

    stats = Worker(store, registry.loader, registry.probe).run_once()

    reasons = {d["customer_id"]: d["reason"] for d in list_dead_letters(store)}
    assert reasons["G0002"] == "income is needed by the churn model"
    assert "model blew up" in reasons["G0005"]
    assert stats.scored == 6
