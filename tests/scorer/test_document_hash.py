"""One document hash: the scorer's echo detection and the features code must agree on what a document says."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.models.input_version import IGNORED_IN_HASH, document_hash
from custscore.scorer.inserting import is_scored
from custscore.scorer.writeback import doc_hash


def test_the_scorer_uses_the_features_document_hash():
    doc = {"_id": "C1", "age": 40, "signup_date": dt.datetime(2024, 1, 1), "region": "north"}
    assert doc_hash(doc) == document_hash(doc) and len(doc_hash(doc)) == 16
    scored = {**doc, "score": {"doc_hash": doc_hash(doc)}, "updated_at": dt.datetime(2025, 1, 1)}
    assert doc_hash(scored) == doc_hash(doc)  # writing the score back is not a change: no re-score loop
    assert is_scored(scored) and not is_scored({**scored, "age": 41})


# --- the one-pass body is the reference text byte for byte: stored score.doc_hash values stay valid -----------------

def _reference_canonical(value):
    """The definition every stored hash was made with: keys as text, sorted as text; NaN, dates and the rest as text."""
    if isinstance(value, dict):
        return {str(k): _reference_canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_reference_canonical(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _reference_hash(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k not in IGNORED_IN_HASH}
    return hashlib.sha256(json.dumps(_reference_canonical(body), separators=(",", ":")).encode()).hexdigest()[:16]


_SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
            | st.datetimes(min_value=dt.datetime(1900, 1, 1)) | st.dates() | st.decimals(allow_nan=False))
_KEYS = st.text(max_size=4) | st.sampled_from(IGNORED_IN_HASH) | st.integers(0, 12) | st.booleans() | st.none()
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner)
                       | st.dictionaries(_KEYS, inner, max_size=3), max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=5) | st.sampled_from(IGNORED_IN_HASH), _VALUES, max_size=6)
       | st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_the_hash_is_the_reference_definition_for_any_document(doc):
    assert document_hash(doc) == _reference_hash(doc)


def test_a_stored_hash_from_before_the_one_pass_body_still_matches():
    doc = {"_id": "C0000001", "customer_id": "C0000001", "age": 57, "income": None, "region": "south",
           "signup_date": dt.datetime(2024, 2, 18, 14, 52, 10), "support_tickets": 0, "ratio": float("nan"),
           "tags": ["a", 1, 2.5], "nested": {"b": 1, "a": dt.date(2024, 1, 1)}, "score": {"risk": "high"}}
    assert document_hash(doc) == _reference_hash(doc) == "74b5aaed797b990c"  # computed by the code before it
