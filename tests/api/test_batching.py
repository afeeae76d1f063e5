"""Micro-batching: waiting requests share one call, never with a customer id twice, and one bad one fails alone."""

from __future__ import annotations

import threading

import pytest

from custscore.api.batching import Job, MicroBatcher
from custscore.errors import InputError


def _job(*ids, key="k"):
    return Job([{"_id": i} for i in ids], [], key=key)


def test_jobs_waiting_behind_a_busy_thread_are_scored_in_one_call():
    release, started, calls = threading.Event(), threading.Event(), []

    def run(key, jobs):
        calls.append([sorted(j.ids) for j in jobs])
        started.set()
        release.wait(10)
        return [sorted(j.ids) for j in jobs]

    batcher = MicroBatcher(run)
    results = {}

    def send(name, *ids):
        results[name] = batcher.submit(_job(*ids))

    first = threading.Thread(target=send, args=("first", "A"))
    first.start()
    assert started.wait(10)
    # queued while the first call runs: B and C share the next call, the second B goes to a call of its own
    queued = [_job("B"), _job("C"), _job("B")]
    for job in queued:
        batcher._queue.put(job)
    release.set()
    first.join(10)
    assert [j.future.result(10) for j in queued] == [["B"], ["C"], ["B"]]
    assert results["first"] == ["A"]
    assert calls == [[["A"]], [["B"], ["C"]], [["B"]]]


def test_groups_keep_keys_apart_and_respect_the_size_limit():
    batcher = MicroBatcher(lambda key, jobs: [None] * len(jobs), max_customers=3)
    jobs = [_job("A", "B"), _job("C", key="other"), _job("D"), _job("E")]
    assert [[sorted(j.ids) for j in g] for g in batcher.groups(jobs)] == [[["A", "B"], ["D"]], [["C"]], [["E"]]]


def test_a_failing_request_fails_alone_when_its_batch_is_retried_one_by_one():
    def run(key, jobs):
        if any("BAD" in j.ids for j in jobs):
            raise InputError("customer BAD is bad")
        return [sorted(j.ids) for j in jobs]

    batcher = MicroBatcher(run)
    good, bad = _job("A"), _job("BAD")
    batcher._run([good, bad])
    assert good.future.result(1) == ["A"]
    with pytest.raises(InputError, match="customer BAD is bad"):
        bad.future.result(1)
    assert batcher.call(lambda: 42) == 42


def test_admit_refuses_a_job_before_its_batch_is_scored_and_its_failure_reaches_every_job():
    calls = []

    def run(key, jobs):
        calls.append([sorted(j.ids) for j in jobs])
        return [sorted(j.ids) for j in jobs]

    batcher = MicroBatcher(run, admit=lambda jobs: [InputError("no") if "X" in j.ids else None for j in jobs])
    good, refused = _job("A"), _job("X")
    for job in (good, refused):
        batcher._queue.put(job)
    assert batcher.submit(_job("B")) == ["B"]
    assert good.future.result(10) == ["A"]
    with pytest.raises(InputError, match="no"):
        refused.future.result(10)
    assert ["X"] not in [ids for call in calls for ids in call]

    def down(jobs):
        raise InputError("store down")

    failing = MicroBatcher(run, admit=down)
    with pytest.raises(InputError, match="store down"):
        failing.submit(_job("C"))
