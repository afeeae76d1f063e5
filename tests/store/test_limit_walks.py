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


@settings(max_examples=400, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(["age", "region", "notes", "$x", "a.b", "", "tags"]), DOCS, max_size=4))
def test_validation_quick_pass_gives_what_the_full_walks_give(fields):
    """A customer proven clean in one pass is validated exactly as the field-name walk and plain_deep would."""
    from custscore.store import validation

    raw = {"customer_id": "C1", **fields}
    if limits.find_unstorable(raw) is not None:
        return  # validation refuses it before either path
    quick = validation.validate_customer(raw, 0, storable=True)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(validation, "_already_clean", lambda doc: False)
        full = validation.validate_customer(raw, 0, storable=True)
    assert quick == full


def _chain(depth: int, padding: str) -> dict:
    """A document ``depth`` levels deep (dicts and lists alternating) with ``padding`` at the top."""
    inner: object = 1
    for level in range(depth - 1):
        inner = {"k": inner} if level % 2 else [inner]
    return {"pad": padding, "v": inner}


@pytest.mark.parametrize("padding", ["x" * 800, "\x03\x04" * 400])  # type bytes in text only make the check walk
def test_nesting_is_refused_past_100_levels_whether_or_not_the_type_bytes_prove_it(padding):
    assert len(limits.encode_document(_chain(100, padding))) > limits.min_bytes_past_nesting()
    with pytest.raises(limits.LimitExceeded, match="nested more than 100 levels deep"):
        limits.encode_document(_chain(101, padding))


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=3), DOCS, max_size=4), padding=st.sampled_from(["", "y" * 700]))
def test_encode_document_refuses_exactly_what_the_reference_refuses(doc, padding):
    doc = {**doc, "pad": padding}
    try:
        bson.encode(doc)
    except Exception:  # noqa: BLE001 - not encodable at all: refused for another reason, tested elsewhere
        return
    refused = False
    try:
        limits.encode_document(doc)
    except limits.LimitExceeded:
        refused = True
    assert refused == (reference_depth(doc) > limits.MAX_NESTING)
