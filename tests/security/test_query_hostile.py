"""Issue 13 items 3 and 7: `query` cannot hang or crash; its limits are validated; exports stream."""

from __future__ import annotations

import json

import pytest

from custscore.config import Settings
from custscore.errors import InputError, LimitExceeded, QueryTimeout
from custscore.store import open_store
from custscore.store.query import iter_customer_frames, parse_filter, query_customers
from custscore.store.schema import CUSTOMERS
from tests.security.cli_helpers import assert_one_red_line, cli
from tests.security.helpers import good

SENTENCE = "the customer bought nothing in the last ninety days and opened three support tickets"


def _seed(home, n=5) -> None:
    with open_store(Settings.build(home=home, environ={})) as store:
        store.collection(CUSTOMERS).insert_many([
            {**good(f"C{i}"), "score": {"risk": "high", "reasons": [{"sentence": SENTENCE}]}} for i in range(n)
        ])


def test_the_issue_regex_returns_at_once(tmp_path):
    _seed(tmp_path)
    result = cli(tmp_path, "query", '{"score.reasons.sentence": {"$regex": "^(\\\\w+\\\\s?)+!$"}}')
    assert result.exit_code == 0, result.output
    assert "0 rows" in result.output


def test_a_runaway_regex_stops_at_the_time_budget_with_a_clean_error(tmp_path):
    _seed(tmp_path, n=1)
    with open_store(Settings.build(home=tmp_path, environ={})) as store:
        store.collection(CUSTOMERS).update_one({"_id": "C0"}, {"$set": {"region": "a" * 40 + "b"}})
    result = cli(tmp_path, "query", '{"region": {"$regex": "(a|a)+$"}}', "--timeout", "0.2")
    assert_one_red_line(result, "the query ran longer than 0.2 s and was stopped; narrow the filter, add --limit, "
                                "or raise --timeout")


@pytest.mark.parametrize("args, message", [
    (['{"region": {"$regex": "(unclosed"}}'], "$regex '(unclosed' is not a valid pattern (missing ) at position 9)"),
    (['{"region": {"$regex": "a", "$options": "q"}}'], "$options 'q': unknown option 'q'; use i, m, s or x"),
    (["{}", "--limit", "9223372036854775808"], "--limit must be 0 (all) up to 10,000,000, got 9223372036854775808"),
    (["{}", "--limit", "-1"], "--limit must be 0 (all) up to 10,000,000, got -1"),
    (["{}", "--timeout", "-3"], "--timeout must be between 0 (no limit) and 86400 seconds, got -3.0"),
    (["{}", "--timeout", "nan"], "--timeout must be between 0 (no limit) and 86400 seconds, got nan"),
    (['{"a": ' * 1000 + "1" + "}" * 1000], "filter is nested more than 100 levels deep"),
    (['{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"], "filter is nested more than 100 levels deep"),
    ([json.dumps({"$and": [{"$and": [{"x": 1}]}]}).replace('{"x": 1}', '{"$and": [' * 400 + '{"x": 1}' + "]}" * 400)],
     "filter is nested more than 100 levels deep"),
    (['{"age": {"$bogus": 1}}'], "the filter was refused"),
])
def test_bad_queries_give_one_red_line(tmp_path, args, message):
    _seed(tmp_path, n=2)
    assert_one_red_line(cli(tmp_path, "query", *args), message)


def test_a_nested_but_reasonable_and_still_runs(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    store.collection(CUSTOMERS).insert_many([good("A"), {**good("B"), "age": 70}])
    spec: dict = {"age": {"$gt": 50}}
    for _ in range(45):  # 90 levels
        spec = {"$and": [spec]}
    assert list(query_customers(store, spec, limit=0)["_id"]) == ["B"]
    store.close()


def test_library_limits_are_checked_too(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    with pytest.raises(LimitExceeded):
        query_customers(store, {}, limit=2**63)
    with pytest.raises(InputError):
        parse_filter('{"a": 1' + "0" * 5000 + "}")
    store.close()


def test_the_time_budget_covers_a_slow_scan(tmp_path, monkeypatch):
    """The budget is checked between documents too, not only inside a regex."""
    import time as time_module

    from custscore.store import limits

    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    store.collection(CUSTOMERS).insert_many([good(f"C{i}") for i in range(50)])
    clock = iter(range(0, 100_000, 10))
    monkeypatch.setattr(limits.time, "monotonic", lambda: float(next(clock)))  # ten seconds pass per reading
    with pytest.raises(QueryTimeout, match="longer than 5 s"):
        query_customers(store, {"age": {"$gt": 1}}, limit=0, timeout=5)
    assert time_module.monotonic() > 0
    store.close()


def test_a_table_is_capped_and_says_how_to_export(tmp_path):
    _seed(tmp_path, n=1005)
    result = cli(tmp_path, "query", "{}", "--limit", "0")
    assert result.exit_code == 0, result.output
    assert ("showing the first 1,000 rows; export them all with --csv or --json, e.g. custscore query '{}' "
            "--limit 0 --csv > customers.csv") in result.output.replace("\n", " ")


def test_csv_and_json_exports_stream_every_row_in_bounded_tables(tmp_path):
    _seed(tmp_path, n=2500)
    result = cli(tmp_path, "query", "{}", "--limit", "0", "--csv", "--fields", "age,region")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "_id,age,region" and len(lines) == 2501 and lines.count(lines[0]) == 1
    result = cli(tmp_path, "query", "{}", "--limit", "0", "--json", "--fields", "age")
    assert len([json.loads(ln) for ln in result.output.strip().splitlines()]) == 2500
    with open_store(Settings.build(home=tmp_path, environ={})) as store:
        sizes = [len(f) for f in iter_customer_frames(store, {}, limit=0, fields=["age"], chunk_rows=1000)]
    assert sizes == [1000, 1000, 500]


def test_the_query_command_has_a_30_second_budget_by_default(tmp_path, monkeypatch):
    """A plain `custscore query FILTER` (no --timeout) runs under the 30 s budget, tables and exports alike."""
    from custscore.store import query as query_module

    _seed(tmp_path, n=2)
    asked = []
    for name in ("query_customers", "iter_customer_frames"):
        original = getattr(query_module, name)

        def spy(*args, _original=original, **kw):
            asked.append(kw.get("timeout"))
            return _original(*args, **kw)

        monkeypatch.setattr(query_module, name, spy)
    assert cli(tmp_path, "query", "{}").exit_code == 0
    assert cli(tmp_path, "query", "{}", "--csv").exit_code == 0
    assert asked == [30.0, 30.0]
