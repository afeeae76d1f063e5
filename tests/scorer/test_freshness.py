"""The as-of clock in the worker: the freshness sweep, the replay key by day, scoring once, late events."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from custscore.clock import FakeClock, FixedClock
from custscore.models import feature_reads, feature_words, input_version
from custscore.models import features as F
from custscore.scorer.freshness import FreshnessSweep, count_stale, stale_cutoff
from custscore.scorer.partition import Partition
from custscore.scorer.worker import Worker
from custscore.store.loading import load_customers, load_events
from custscore.store.schema import CUSTOMERS, PREDICTIONS
from tests.scorer.fakes import VERSIONS, CustomerScore, open_embedded, purchase

START = dt.datetime(2025, 3, 1, 9, 0)


class RecencyModels:
    """Churn grows with the days since the last purchase, computed by the real feature code as of ``now``."""

    def __init__(self):
        self.versions = dict(VERSIONS)
        self.calls: list[list[str]] = []  # the ids of every score_batch call, in order

    def score_batch(self, store, customers, now):
        ids = [c["_id"] for c in customers]
        self.calls.append(ids)
        events = feature_reads.read_events(store, ids, until=now)
        X = F.customer_features(customers, events, now)
        versions = input_version.input_versions(customers, events)
        out = []
        for cid in ids:
            recency = X.loc[cid, "recency_days"]
            p = 0.9 if math.isnan(recency) else round(1 - math.exp(-recency / 60.0), 4)
            reason = {"feature": "recency_days", "value": None if math.isnan(recency) else float(recency),
                      "contribution": round(p - 0.5, 4),
                      "sentence": f"{feature_words.describe('recency_days', recency)} raises churn risk"}
            score = {"model_versions": dict(self.versions), "churn_probability": p,
                     "risk": "high" if p >= 0.5 else "low", "reasons": [reason]}
            out.append(CustomerScore(cid, versions[cid], score, {"churn": {"recency_days": p - 0.5}},
                                     {"recency_days": None if math.isnan(recency) else float(recency)}))
        return out

    def scored_rows(self) -> int:
        return sum(len(c) for c in self.calls)


@pytest.fixture
def store(tmp_path):
    st = open_embedded(tmp_path / "store.sqlite")
    yield st
    st.close()


def customers(store, n: int, bought: dt.datetime | None = START - dt.timedelta(days=10), prefix: str = "Q") -> list:
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    report = load_customers(store, [{"customer_id": cid, "signup_date": dt.datetime(2024, 1, 1)} for cid in ids])
    assert not report.problems, report.problems[:1]
    if bought is not None:
        load_events(store, [purchase(cid, when=bought) for cid in ids])
    return ids


def worker(store, models, clock, **kw) -> Worker:
    return Worker(store, lambda s: models, batch_size=kw.pop("batch_size", 8), clock=clock, **kw)


def score_of(store, cid) -> dict:
    return store.collection(CUSTOMERS).find_one({"_id": cid})["score"]


def test_a_quiet_customer_is_rescored_as_days_pass_and_the_reason_names_recency(store):
    ids = customers(store, 3)
    clock, models = FakeClock(START), RecencyModels()
    first = worker(store, models, clock, max_age="1d").run_once()
    assert first.scored == 3
    before = score_of(store, ids[0])
    assert before["as_of"] == START
    assert before["reasons"][0]["sentence"] == "last purchase 10 days ago raises churn risk"

    clock.advance(hours=3)  # same as-of day: nothing is stale, nothing is written
    again = worker(store, models, clock, max_age="1d").run_once()
    assert (again.scored, again.swept) == (0, 0)

    clock.advance(days=120)
    later = worker(store, models, clock, max_age="1d").run_once()
    assert (later.scored, later.swept, later.stale) == (3, 3, 0)
    after = score_of(store, ids[0])
    assert after["churn_probability"] > before["churn_probability"]
    assert after["as_of"] == clock.now()
    assert after["input_version"] == before["input_version"]  # same inputs, a new day
    top = after["reasons"][0]
    assert top["feature"] == "recency_days"
    assert top["sentence"] == "last purchase 130 days ago raises churn risk"
    # a prediction record per as-of day, so monitoring sees the risk rise
    assert store.collection(PREDICTIONS).count({"customer_id": ids[0]}) == 2


def test_max_age_zero_turns_the_sweep_off(store):
    customers(store, 3)
    clock, models = FakeClock(START), RecencyModels()
    worker(store, models, clock, max_age=0).run_once()
    clock.advance(days=120)
    stats = worker(store, models, clock, max_age=0).run_once()
    assert (stats.scored, stats.swept, stats.max_age) == (0, 0, None)
    assert count_stale(store, clock.now(), dt.timedelta(days=1)) == 3


def test_the_sweep_pages_oldest_first_and_never_reads_more_than_a_page(store):
    clock, models = FakeClock(START), RecencyModels()
    old = customers(store, 4, prefix="O")
    worker(store, models, clock, max_age=0).run_once()
    clock.advance(days=5)
    young = customers(store, 3, prefix="Y")
    worker(store, models, clock, max_age=0).run_once()
    clock.advance(days=30)
    models.calls.clear()

    sweep = FreshnessSweep(store, clock, Partition(1, 0), dt.timedelta(days=1), page_size=3)
    pages = [sweep.next_page(set()) for _ in range(2)]
    assert [len(p) for p in pages] == [3, 3]  # bounded pages; the same oldest ones until they are re-scored
    assert {i.customer_id for i in pages[0]} <= set(old)
    assert sweep.stale == 7

    stats = worker(store, models, clock, max_age="1d", batch_size=3).run_once()
    assert stats.swept == 7 and max(len(c) for c in models.calls) <= 3
    order = [cid for call in models.calls for cid in call]
    assert set(order[:4]) == set(old) and set(order[4:]) == set(young)  # oldest score first
    assert count_stale(store, clock.now(), dt.timedelta(days=1)) == 0


def test_a_sub_day_max_age_rescores_at_most_once_per_as_of_day():
    noon = dt.datetime(2025, 3, 1, 12, 0)
    assert stale_cutoff(noon, dt.timedelta(hours=1)) == dt.datetime(2025, 3, 1)
    assert stale_cutoff(noon, dt.timedelta(days=2)) == dt.datetime(2025, 2, 27, 12, 0)


def test_a_customer_in_both_the_feed_and_the_scan_is_scored_once(store):
    customers(store, 2, prefix="A")
    clock, models = FakeClock(START), RecencyModels()
    worker(store, models, clock).run_once()  # saves feed tokens: the next start follows the feed
    fresh = customers(store, 20, bought=None, prefix="N")  # unscored (the scan) and changed (the feed) at once
    models.calls.clear()

    stats = worker(store, models, clock, batch_size=8).run_once()

    assert stats.scored == 20 and stats.replayed == 0
    assert sorted(cid for call in models.calls for cid in call) == sorted(fresh)
    assert models.scored_rows() == 20


def test_events_after_the_as_of_date_change_no_feature_and_no_score(store):
    ids = customers(store, 2)
    clock, models = FixedClock(START), RecencyModels()
    worker(store, models, clock).run_once()
    before = {cid: score_of(store, cid) for cid in ids}
    features_before = feature_reads.features_for(store, ids, START)

    later = START + dt.timedelta(days=2)
    load_events(store, [purchase(ids[0], amount=99.0, when=later), purchase(ids[1], when=later)])
    models.calls.clear()
    stats = worker(store, models, clock).run_once()

    assert feature_reads.features_for(store, ids, START).equals(features_before)
    assert stats.scored == 0 and stats.replayed == 2  # looked at (the feed said so), nothing written
    assert {cid: score_of(store, cid) for cid in ids} == before
    # the day after, as of a later date, the planted purchases count
    assert worker(store, models, FixedClock(later + dt.timedelta(hours=1))).run_once().scored == 2
    assert score_of(store, ids[0])["reasons"][0]["sentence"] == "last purchase 0 days ago raises churn risk"


def test_setting_the_clock_back_rescores_scores_from_a_later_day(store):
    ids = customers(store, 3)
    models = RecencyModels()
    worker(store, models, FakeClock(START + dt.timedelta(days=200))).run_once()
    assert score_of(store, ids[0])["reasons"][0]["sentence"] == "last purchase 210 days ago raises churn risk"

    stats = worker(store, models, FixedClock(START)).run_once()  # a replay as of an earlier date

    assert (stats.scored, stats.swept) == (3, 3)
    assert score_of(store, ids[0])["as_of"] == START
    assert score_of(store, ids[0])["reasons"][0]["sentence"] == "last purchase 10 days ago raises churn risk"


def test_the_stale_data_warning_names_the_newest_event_and_the_fix(store):
    from custscore.scorer.staleness import stale_data_warning

    customers(store, 2)  # they bought on 2025-02-19
    assert stale_data_warning(store, START) is None
    assert stale_data_warning(store, START + dt.timedelta(days=80)) is None  # within the 90-day horizon
    assert stale_data_warning(store, START + dt.timedelta(days=200)) == (
        "the data looks stale: the newest event is 2025-02-19, 210 days before the as-of date 2025-09-17 "
        "(churn horizon 90 days); score as of the data's end with --as-of 2025-02-19 (or CUSTSCORE_AS_OF=2025-02-19)")
    assert stale_data_warning(store, START + dt.timedelta(days=200), horizon_days=365) is None


def test_the_live_panel_shows_the_stale_scores_and_the_clock(store):
    from rich.console import Console

    from custscore.cli.scoring import stats_panel

    customers(store, 3)
    clock, models = FakeClock(START), RecencyModels()
    worker(store, models, clock).run_once()
    clock.advance(days=3)
    w = worker(store, models, clock, batch_size=2, max_age="1d")
    seen = []
    w.run_once(on_batch=lambda stats: seen.append((stats.stale, stats.swept)))
    assert seen[0] == (1, 2)  # 3 stale at the start of the pass, 2 re-scored by the first batch
    console = Console(width=100, record=True)
    console.print(stats_panel(w.stats))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in console.export_text().splitlines()
            if line.count("│") == 3}
    assert rows["stale scores"] == "0 older than 1d (3 re-scored)"
    assert rows["clock"] == "as of 2025-03-04 09:00"


def test_a_running_worker_rescores_quiet_customers_between_feed_batches(store):
    import threading

    ids = customers(store, 3)
    clock, models = FakeClock(START), RecencyModels()
    worker(store, models, clock).run_once()
    before = score_of(store, ids[0])["churn_probability"]
    clock.advance(days=120)
    w = worker(store, models, clock, max_age="1d", sweep_interval_s=0.0)
    stop, swept = threading.Event(), threading.Event()

    def on_batch(stats):
        if stats.swept >= 3:
            swept.set()

    thread = threading.Thread(target=w.run, args=(stop, on_batch))
    thread.start()
    try:
        assert swept.wait(30), w.stats
    finally:
        stop.set()
        thread.join(30)
    assert score_of(store, ids[0])["churn_probability"] > before
    assert w.stats.swept == 3 and w.stats.stale == 0
