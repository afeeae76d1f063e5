"""custscore query: filters parsed safely, results as a flat table with the score columns."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from custscore.config import Settings
from custscore.errors import InputError
from custscore.store import open_store
from custscore.store.loading import load_customers
from custscore.store.query import DEFAULT_FIELDS, parse_filter, parse_sort, query_customers

JS_REFUSED = (
    "operator {op} runs server-side JavaScript and is refused; "
    "express the condition with query operators such as $gt, $in, $expr"
)
SCORES = {  # id: (risk, churn probability, age)
    "C1": ("high", 0.81, 34),
    "C2": ("low", 0.05, 51),
    "C3": ("high", 0.93, 27),
    "C4": ("medium", 0.40, 45),
    "C5": ("high", 0.66, 62),
}


@pytest.fixture(params=["memory", "embedded"])
def store(request, tmp_path):
    uri = "memory:" if request.param == "memory" else f"embedded:{tmp_path / 'store.sqlite'}"
    st = open_store(Settings.build(mongo_uri=uri, environ={}))
    docs = [{"customer_id": i, "signup_date": "2024-01-01", "age": age, "region": "north"} for i, (_, _, age) in SCORES.items()]
    load_customers(st, docs)
    for i, (risk, p, _) in SCORES.items():
        st["customers"].update_one({"_id": i}, {"$set": {
            "_truth": {"persona": "loyal"},
            "score": {"risk": risk, "churn_probability": p, "satisfaction": 7.5, "segment_name": "steady",
                      "scored_at": dt.datetime(2026, 1, 1), "reasons": [{"feature": "age", "contribution": 0.1}]},
        }})
    yield st
    st.close()


def test_high_risk_customers_sorted_by_churn_probability(store):
    table = query_customers(store, parse_filter('{"score.risk": "high"}'), sort="score.churn_probability:-1")
    assert list(table.columns) == list(DEFAULT_FIELDS)
    assert list(table["_id"]) == ["C3", "C1", "C5"]
    assert list(table["score.churn_probability"]) == [0.93, 0.81, 0.66]
    assert "_truth.persona" not in table.columns and "score.reasons" not in table.columns


def test_filter_and_sort_fields_are_shown_but_never_the_truth(store):
    table = query_customers(store, {"age": {"$gte": 40}, "_truth.persona": "loyal"}, sort=[("region", 1), ("age", 1)])
    assert list(table.columns) == [*DEFAULT_FIELDS, "age", "region"]
    assert list(table["_id"]) == ["C4", "C2", "C5"]


def test_fields_choose_columns_and_spread_sub_documents(store):
    table = query_customers(store, '{"_id": "C2"}', fields="age,purchase_history,_truth")
    assert table.columns[:2].tolist() == ["_id", "age"]
    assert {"purchase_history.orders", "purchase_history.total_spent", "_truth.persona"} <= set(table.columns)
    assert table.loc[0, "_truth.persona"] == "loyal"


def test_limit_and_empty_results(store):
    assert len(query_customers(store, {}, limit=2)) == 2
    assert len(query_customers(store, {}, limit=0)) == 5
    empty = query_customers(store, {"score.risk": "none"})
    assert len(empty) == 0 and list(empty.columns) == list(DEFAULT_FIELDS)
    with pytest.raises(InputError, match=r"^--limit must be 0 \(all\) up to 10,000,000, got -1$"):
        query_customers(store, {}, limit=-1)


@pytest.mark.parametrize("op", ["$where", "$function", "$accumulator"])
def test_javascript_operators_are_refused(op):
    with pytest.raises(InputError) as err:
        parse_filter(json.dumps({"$and": [{"age": 3}, {op: "sleep(1000)"}]}))
    assert str(err.value) == JS_REFUSED.format(op=op)


def test_query_refuses_javascript_given_as_a_dict(store):
    with pytest.raises(InputError) as err:
        query_customers(store, {"score.risk": "high", "$where": "this.age > 3"})
    assert str(err.value) == JS_REFUSED.format(op="$where")


def test_bad_filters_name_the_position_and_show_an_example():
    example = "write it like '{\"score.risk\": \"high\"}'"
    with pytest.raises(InputError) as err:
        parse_filter("{score.risk: high}")
    assert str(err.value) == (
        f"filter is not valid JSON at character 2 (Expecting property name enclosed in double quotes); {example}"
    )
    with pytest.raises(InputError) as err:
        parse_filter('{"age": 3')
    assert str(err.value) == f"filter is not valid JSON at character 10 (Expecting ',' delimiter); {example}"
    with pytest.raises(InputError) as err:
        parse_filter('["age"]')
    assert str(err.value) == f"filter must be a JSON object, got list; {example}"
    assert parse_filter("  ") == {}


def test_parse_sort():
    assert parse_sort("score.churn_probability:-1,age") == [("score.churn_probability", -1), ("age", 1)]
    assert parse_sort("age:desc, region:asc") == [("age", -1), ("region", 1)]
    assert parse_sort("") == []
    with pytest.raises(InputError) as err:
        parse_sort("age:down")
    assert str(err.value) == "sort item 'age:down' is not FIELD[:1|-1]; write e.g. --sort score.churn_probability:-1,age"


def test_an_unknown_operator_is_a_clear_input_error(store):
    with pytest.raises(InputError) as err:
        query_customers(store, {"age": {"$foo": 1}})
    assert str(err.value) == "the filter was refused (unknown operator: $foo); use query operators such as $gt, $in, $regex"
