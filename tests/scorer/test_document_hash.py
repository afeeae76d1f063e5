"""One document hash: the scorer's echo detection and the features code must agree on what a document says."""

from __future__ import annotations

import datetime as dt

from custscore.models.input_version import document_hash
from custscore.scorer.inserting import is_scored
from custscore.scorer.writeback import doc_hash


def test_the_scorer_uses_the_features_document_hash():
    doc = {"_id": "C1", "age": 40, "signup_date": dt.datetime(2024, 1, 1), "region": "north"}
    assert doc_hash(doc) == document_hash(doc) and len(doc_hash(doc)) == 16
    scored = {**doc, "score": {"doc_hash": doc_hash(doc)}, "updated_at": dt.datetime(2025, 1, 1)}
    assert doc_hash(scored) == doc_hash(doc)  # writing the score back is not a change: no re-score loop
    assert is_scored(scored) and not is_scored({**scored, "age": 41})
