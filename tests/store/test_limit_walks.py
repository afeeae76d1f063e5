"""The limit checks' quick passes agree with a plain recursive reading of MongoDB's limits, on any document."""

from __future__ import annotations

import datetime as dt
import enum

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.store import limits


class Level(enum.IntEnum):
    HIGH = 3


def reference_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def reference_problem(value, depth: int = 1) -> bool:
    """Whether anything in ``value`` breaks a limit find_unstorable checks (shallow enough to recurse here)."""
    def bad_text(text):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    if isinstance(value, dict):
        return depth > limits.MAX_NESTING or any(
            not isinstance(k, str) or "\x00" in k or bad_text(k) or reference_problem(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return depth > limits.MAX_NESTING or any(reference_problem(v, depth + 1) for v in value)
    if isinstance(value, str):
        return bad_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return not limits.INT64_MIN <= value <= limits.INT64_MAX
    return False


SCALARS = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=4),
                    st.sampled_from(["a\x00b", "\ud800", "ünï", "x"]), st.integers(-2**70, 2**70),
                    st.just(dt.datetime(2026, 1, 1)), st.just(Level.HIGH), st.binary(max_size=3))
KEYS = st.one_of(st.text(max_size=3), st.sampled_from(["a\x00", "\udcff", "é", "k"]), st.integers(0, 3))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                                                     st.dictionaries(KEYS, inner, max_size=3)), max_leaves=25)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(DOCS)
def test_nesting_depth_and_find_unstorable_agree_with_the_reference(doc):
    assert limits.nesting_depth(doc) == min(reference_depth(doc), limits.MAX_NESTING + 1)
    assert (limits.find_unstorable(doc) is not None) == reference_problem(doc)


def test_depth_is_counted_to_the_limit_and_no_further():
    doc: object = 1
    for _ in range(5000):
        doc = {"a": [doc]}
    assert limits.nesting_depth(doc) == limits.MAX_NESTING + 1
    assert limits.nesting_depth({"a": {"b": [1, {"c": 2}]}}) == 4
    assert limits.nesting_depth(7) == 0 and limits.nesting_depth({}) == 1
    problem = limits.find_unstorable(doc)
    assert problem is not None and problem.reason == "is nested more than 100 levels deep (MongoDB's limit); flatten it"


def test_a_problem_is_named_whatever_the_quick_pass_says():
    assert str(limits.find_unstorable({"a": {"b": ["ok", "x\ud800"]}})) == \
        "a.b.1: is not valid UTF-8 text (a lone surrogate); fix the text"
    assert str(limits.find_unstorable({"ok": "ünïcødé", "n": 2**64})) == \
        "n: is too large an integer (MongoDB stores 8-byte integers); store it as text"
    assert limits.find_unstorable({"ok": "ünïcødé", "level": Level.HIGH, "t": (1, 2)}) is None


def test_the_smallest_document_past_the_nesting_limit_is_refused_without_a_walk_below_that_size():
    doc: dict = {}
    inner = doc
    for _ in range(limits.MAX_NESTING):
        inner[""] = {}
        inner = inner[""]
    assert limits.nesting_depth(doc) == limits.MAX_NESTING + 1
    assert len(bson.encode(doc)) == limits.min_bytes_past_nesting()
    with pytest.raises(limits.LimitExceeded, match="nested more than 100 levels deep"):
        limits.encode_document(doc)
    listed: list = []
    inner_list = listed
    for _ in range(limits.MAX_NESTING - 1):
        inner_list.append([])
        inner_list = inner_list[0]
    assert len(bson.encode({"": listed})) > limits.min_bytes_past_nesting()  # arrays cost more per level
    with pytest.raises(limits.LimitExceeded, match="nested more than 100 levels deep"):
        limits.encode_document({"": listed})
