"""A batch's events handed out per subset of customers: the whole batch as read, a subset in stored order."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.scorer.batch_events import BatchEvents

T0 = dt.datetime(2026, 1, 1)


def _events(ids: list) -> list[dict]:
    return [{"customer_id": cid, "ts": T0 + dt.timedelta(days=i), "amount": float(i)} for i, cid in enumerate(ids)]


def test_the_whole_batch_is_the_events_as_read_and_a_subset_keeps_their_order():
    docs = _events(["C1", "C2", "C1", "C3", "C2"])
    events = BatchEvents(docs, ["ts", "amount"])
    assert events.documents(["C1", "C2", "C3"]) == docs
    assert events.documents(["C3", "C2", "C9"]) == [docs[1], docs[3], docs[4]]
    assert events.documents(["C1"]) == [docs[0], docs[2]]
    assert events.documents([]) == [] and events.customers == {"C1", "C2", "C3"}


def test_more_customers_than_the_plain_path_takes_get_a_frame_with_the_fields_as_columns():
    ids = [f"C{i}" for i in range(300)]
    frame = BatchEvents(_events(ids), ["ts", "amount"]).for_customers(ids)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["customer_id", "ts", "amount"]
    assert len(frame) == 300 and frame["amount"].iloc[-1] == 299.0


@settings(max_examples=200, deadline=None)
@given(owners=st.lists(st.sampled_from(["C1", "C2", 3, None, ["C1"]]), max_size=8),
       wanted=st.lists(st.sampled_from(["C1", "C2", "3", "None", "['C1']"]), max_size=4))
def test_any_ids_get_the_events_whose_id_as_text_is_asked_for(owners, wanted):
    """Ids that are not text (an app writing around validation) are matched by their text, whole batch or not."""
    docs = [{"n": i} if owner is None else {"customer_id": owner, "n": i} for i, owner in enumerate(owners)]
    assert BatchEvents(docs, ["n"]).documents(wanted) == [d for d in docs if str(d.get("customer_id")) in set(wanted)]
