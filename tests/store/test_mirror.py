"""The SQLite mirror (incremental, idempotent, one transaction) and the read-only SQL runner."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pandas as pd
import pytest

from custscore.config import Settings
from custscore.errors import InputError
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import UpdateOne, open_store
from custscore.store.loading import load_events
from custscore.store.mirror import StatsTable, mirror
from custscore.store.sql import EXAMPLE_QUERIES, run_sql
from tests.conftest import make_settings

END = dt.datetime(2026, 6, 30)
LATER = dt.datetime(2026, 7, 1, 9, 30, 0)


def simulated(settings: Settings, n: int = 500):
    store = open_store(settings)
    run_simulation(store, SimulationConfig(n, seed=11, end=END))
    return store


@pytest.fixture
def store(tmp_path):
    st = simulated(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    yield st
    st.close()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "mirror.sqlite"


def query(path, sql, params=()):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def columns(path, table):
    return [r[1] for r in query(path, f"PRAGMA table_info({table})")]


def dump(path):
    """Every table's schema and rows, in key order."""
    out = {}
    for (name, sql) in query(path, "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name != '_mirror_state'"):
        out[name] = (sql, query(path, f'SELECT * FROM "{name}" ORDER BY 1'))
    return out


def rows_by_column(path):
    """Every table as sorted {column: value} rows, whatever the column order."""
    out = {}
    for (name,) in query(path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name != '_mirror_state'"):
        with sqlite3.connect(path) as conn:
            cursor = conn.execute(f'SELECT * FROM "{name}" ORDER BY 1')
            cols = [d[0] for d in cursor.description]
            out[name] = [dict(zip(cols, r, strict=True)) for r in cursor.fetchall()]
    return out


def test_mirror_copies_counts_and_flat_columns(store, path):
    report = mirror(store, path)
    assert report.tables["customers"].rows == store["customers"].count() == 500
    assert report.tables["events"].rows == store["events"].count()
    assert run_sql(path, "SELECT count(*) AS n FROM customers")["n"][0] == store["customers"].count()
    assert run_sql(path, "SELECT count(*) AS n FROM events")["n"][0] == store["events"].count()
    assert "predictions" not in [r[0] for r in query(path, "SELECT name FROM sqlite_master")]

    doc = next(d for d in store["customers"].find({}) if d["purchase_history"]["orders"] > 0)
    row = run_sql(path, "SELECT * FROM customers WHERE customer_id = ?".replace("?", f"'{doc['_id']}'")).iloc[0]
    ph = doc["purchase_history"]
    assert row["age"] == doc["age"] and row["region"] == doc["region"]
    assert row["purchase_history__orders"] == ph["orders"]
    assert row["purchase_history__total_spent"] == pytest.approx(ph["total_spent"])
    for cat, n in ph["categories"].items():
        assert row[f"purchase_history__categories__{cat}"] == n
    assert row["_truth__persona"] == doc["_truth"]["persona"]
    assert row["signup_date"] == doc["signup_date"].strftime("%Y-%m-%d %H:%M:%S")
    assert row["purchase_history__last_purchase"] == ph["last_purchase"].strftime("%Y-%m-%d %H:%M:%S")
    assert "_id" not in row.index

    types = {r[1]: r[2] for r in query(path, "PRAGMA table_info(customers)")}
    assert types["age"] == "INTEGER" and types["income"] == "REAL" and types["_truth__persona"] == "TEXT"
    assert types["purchase_history__categories__books"] == "INTEGER"
    # datetimes are text SQLite's date functions understand
    year = query(path, "SELECT strftime('%Y', signup_date) FROM customers WHERE customer_id = ?", (doc["_id"],))
    assert year[0][0] == str(doc["signup_date"].year)
    event = store["events"].find_one({"customer_id": doc["_id"]})
    mirrored = query(path, "SELECT customer_id, ts, amount FROM events WHERE event_id = ?", (str(event["_id"]),))
    assert mirrored == [(doc["_id"], event["ts"].strftime("%Y-%m-%d %H:%M:%S"), event["amount"])]
    indexes = {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_customers__region", "ix_customers__channel", "ix_events__customer_id", "ix_events__ts"} <= indexes


def test_second_run_copies_nothing_and_changes_nothing(store, path):
    mirror(store, path)
    before = dump(path)
    again = mirror(store, path)
    assert again.rows == 0
    assert {t: c.rows for t, c in again.tables.items()} == {"customers": 0, "events": 0, "predictions": 0}
    assert dump(path) == before


def test_third_run_copies_exactly_what_changed(store, path):
    mirror(store, path)
    customer = store["customers"].find_one({"purchase_history.orders": {"$gt": 0}})
    store["customers"].update_one({"_id": customer["_id"]}, {"$set": {"age": 99, "updated_at": LATER}})
    new_events = [
        {"customer_id": customer["_id"], "ts": LATER - dt.timedelta(hours=i), "amount": 10.0 + i, "category": "books"}
        for i in range(3)
    ]
    assert load_events(store, new_events).inserted == 3

    seen_during_run = []

    def progress(table, rows):
        # another reader during the run still sees the previous mirror (one transaction, WAL)
        seen_during_run.append(run_sql(path, f"SELECT age FROM customers WHERE customer_id = '{customer['_id']}'")["age"][0])

    report = mirror(store, path, on_progress=progress)
    assert report.tables["customers"].rows == 1
    assert report.tables["events"].rows == 3
    assert seen_during_run and set(seen_during_run) == {customer["age"]}
    row = run_sql(path, f"SELECT * FROM customers WHERE customer_id = '{customer['_id']}'").iloc[0]
    assert row["age"] == 99
    assert row["purchase_history__orders"] == customer["purchase_history"]["orders"] + 3
    assert run_sql(path, "SELECT count(*) AS n FROM events")["n"][0] == store["events"].count()
    assert mirror(store, path).rows == 0


def test_score_subdocument_becomes_new_columns(store, path):
    mirror(store, path)
    ids = [d["_id"] for d in store["customers"].find({}, {"_id": 1}, limit=20)]
    score = {
        "churn_probability": 0.42, "risk": "high", "satisfaction": 6.5, "segment": 2, "segment_name": "value seekers",
        "reasons": [{"feature": "recency_days", "effect": 0.2}, {"feature": "support_tickets", "effect": 0.1}],
        "scored_at": LATER, "model_versions": {"churn": "v3", "satisfaction": "v1"},
    }
    store["customers"].bulk_write([UpdateOne({"_id": i}, {"$set": {"score": score, "updated_at": LATER}}) for i in ids])
    report = mirror(store, path)
    assert report.tables["customers"].rows == 20
    cols = columns(path, "customers")
    for name in ("score__churn_probability", "score__risk", "score__reasons", "score__scored_at",
                 "score__model_versions__churn", "score__segment_name"):
        assert name in cols
    frame = run_sql(path, "SELECT customer_id, score__churn_probability AS p, score__risk AS risk, score__reasons AS reasons "
                          "FROM customers WHERE score__risk IS NOT NULL ORDER BY customer_id")
    assert sorted(frame["customer_id"]) == sorted(ids)
    assert set(frame["p"]) == {0.42}
    assert json.loads(frame["reasons"][0]) == score["reasons"]
    assert run_sql(path, "SELECT count(*) AS n FROM customers WHERE score__risk IS NULL")["n"][0] == 480


def test_predictions_table_with_shap_as_json(store, path):
    mirror(store, path)
    store["predictions"].insert_many([
        {"customer_id": f"C{i:07d}", "task": "churn", "model_version": "v1", "prediction": 0.1 * i,
         "scored_at": LATER, "shap": {"age": 0.01 * i, "recency_days": -0.2}, "base_value": 0.3}
        for i in range(1, 6)
    ])
    report = mirror(store, path)
    assert report.tables["predictions"].rows == 5
    frame = run_sql(path, "SELECT * FROM predictions ORDER BY prediction")
    assert len(frame) == 5 and "prediction_id" in frame.columns and "shap__age" not in frame.columns
    assert json.loads(frame["shap"][0]) == {"age": 0.01, "recency_days": -0.2}
    assert frame["scored_at"][0] == "2026-07-01 09:30:00"


def frames(**by_name):
    """Stats tables computing the given frames, each read from customers; ``calls`` counts the computations."""
    calls = {name: 0 for name in by_name}

    def computing(name, frame):
        def compute():
            calls[name] += 1
            return frame
        return compute

    return {name: StatsTable(("customers",), computing(name, f)) for name, f in by_name.items()}, calls


def test_stats_tables_replace_their_previous_rows(store, path):
    frame = pd.DataFrame({"region": ["north", "south"], "customers": [3, 4], "avg_spent": [1.5, None]})
    report = mirror(store, path, stats=frames(by_region=frame)[0])
    assert report.tables["stats_by_region"].rows == 2
    store["customers"].update_one({"_id": "C0000001"}, {"$set": {"age": 98}})
    smaller = pd.DataFrame({"region": ["east"], "customers": [9], "avg_spent": [2.0]})
    mirror(store, path, stats=frames(by_region=smaller)[0])
    assert query(path, "SELECT region, customers, avg_spent FROM stats_by_region") == [("east", 9, 2.0)]


def test_stats_are_recomputed_only_when_a_source_changed(store, path):
    one = pd.DataFrame({"n": [1]})
    stats = {"on_customers": StatsTable(("customers",), lambda: one),
             "on_events": StatsTable(("events",), lambda: one),
             "on_both": StatsTable(("events", "customers"), lambda: one)}
    first = mirror(store, path, stats=stats)
    assert first.refreshed == ["stats_on_customers", "stats_on_events", "stats_on_both"] and first.kept == []

    again = mirror(store, path, stats=stats)  # nothing changed: nothing recomputed
    assert again.rows == 0 and again.refreshed == []
    assert again.kept == ["stats_on_customers", "stats_on_events", "stats_on_both"]
    assert again.tables["stats_on_both"].total == 1

    load_events(store, [{"customer_id": "C0000002", "ts": LATER, "amount": 5.0}])  # also updates C0000002
    assert mirror(store, path, stats=stats).refreshed == ["stats_on_customers", "stats_on_events", "stats_on_both"]
    store["events"].delete_one({"customer_id": "C0000002", "ts": LATER})
    assert mirror(store, path, stats=stats).refreshed == ["stats_on_events", "stats_on_both"]
    store["customers"].update_one({"_id": "C0000001"}, {"$set": {"age": 98}})
    assert mirror(store, path, stats=stats).refreshed == ["stats_on_customers", "stats_on_both"]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE stats_on_events")
    assert mirror(store, path, stats=stats).refreshed == ["stats_on_events"]


def test_a_run_without_stats_leaves_them_to_be_recomputed_later(store, path):
    stats, calls = frames(by_region=pd.DataFrame({"n": [1]}))
    mirror(store, path, stats=stats)
    store["customers"].update_one({"_id": "C0000001"}, {"$set": {"age": 98}})
    assert mirror(store, path).tables["customers"].rows == 1  # --no-stats: the change is copied, stats untouched
    assert mirror(store, path, stats=stats).refreshed == ["stats_by_region"]
    assert mirror(store, path, stats=stats).kept == ["stats_by_region"] and calls == {"by_region": 2}


def test_stats_of_a_collection_the_mirror_does_not_copy_are_refused(store, path):
    with pytest.raises(InputError, match=r"stats table 'x' reads \['orders'\]; its sources must be among"):
        mirror(store, path, stats={"x": StatsTable(("orders",), lambda: pd.DataFrame())})


def test_a_mirror_made_before_stats_were_tracked_gets_them_on_its_next_run(store, path):
    with sqlite3.connect(path) as conn:  # the state table as earlier versions made it
        conn.execute("CREATE TABLE _mirror_state (collection TEXT PRIMARY KEY, token TEXT, source TEXT, "
                     "rows INTEGER, mirrored_at TEXT)")
    stats, calls = frames(by_region=pd.DataFrame({"n": [1]}))
    assert mirror(store, path, stats=stats).refreshed == ["stats_by_region"]
    assert mirror(store, path, stats=stats).kept == ["stats_by_region"] and calls == {"by_region": 1}


def test_failed_run_leaves_the_mirror_untouched(store, path):
    with pytest.raises(InputError, match="cannot be a table name"):
        mirror(store, path, stats=frames(**{"bad name;": pd.DataFrame({"a": [1]})})[0])
    assert "customers" not in [r[0] for r in query(path, "SELECT name FROM sqlite_master")]
    mirror(store, path)
    before = dump(path)
    store["customers"].update_one({"_id": "C0000001"}, {"$set": {"age": 98}})
    with pytest.raises(InputError, match="expected a pandas DataFrame"):
        mirror(store, path, stats=frames(x="not a frame")[0])
    load_events(store, [{"customer_id": "C0000002", "ts": LATER, "amount": 5.0}])

    def interrupted(table, rows):
        if table == "events":  # customers are already written in this run
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mirror(store, path, on_progress=interrupted)
    assert dump(path) == before
    report = mirror(store, path)
    assert report.tables["customers"].rows == 2 and report.tables["events"].rows == 1


def test_a_dropped_table_is_copied_whole_again(store, path):
    mirror(store, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE customers")
    assert mirror(store, path).tables["customers"].rows == 500


def test_full_rebuild_matches_incremental_and_drops_deleted(store, path, tmp_path):
    mirror(store, path)
    store["customers"].update_one({"_id": "C0000002"}, {"$set": {"region": "moon"}})
    store["customers"].delete_one({"_id": "C0000003"})
    report = mirror(store, path)
    assert report.tables["customers"].rows == 1 and report.tables["customers"].deleted == 1
    incremental = rows_by_column(path)
    rebuilt = mirror(store, path, full=True)
    assert rebuilt.full and rebuilt.tables["customers"].rows == 499
    assert rows_by_column(path) == incremental


def test_mirror_of_an_embedded_store(tmp_path):
    store = simulated(make_settings("embedded", tmp_path), n=200)
    path = tmp_path / "mirror.sqlite"
    assert mirror(store, path).tables["customers"].rows == 200
    assert mirror(store, path).rows == 0
    store.close()
    other = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    report = mirror(other, path)  # another store: the mirror is rebuilt, not mixed
    assert report.full and run_sql(path, "SELECT count(*) AS n FROM customers")["n"][0] == 0


# -- run_sql ----------------------------------------------------------------------------------


WRITES = [
    "DROP TABLE customers",
    "delete from customers",
    "  -- sneaky\n INSERT INTO customers (customer_id) VALUES ('x')",
    "UPDATE customers SET age = 1",
    "CREATE TABLE t (a)",
    "ATTACH DATABASE 'other.sqlite' AS other",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "VACUUM INTO 'copy.sqlite'",
    "WITH x AS (SELECT 1) DELETE FROM customers",
    "/* c */ REPLACE INTO customers (customer_id) VALUES ('x')",
]


def test_writes_are_refused_and_change_nothing(store, path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mirror(store, path)
    before = dump(path)
    with pytest.raises(InputError) as refused:
        run_sql(path, "DROP TABLE customers")
    assert str(refused.value).startswith("the SQL mirror is read-only: DROP statements are refused;")
    for statement in WRITES:
        with pytest.raises(InputError, match=r"is read-only: .* refused"):
            run_sql(path, statement)
    assert dump(path) == before
    assert run_sql(path, "SELECT count(*) AS n FROM customers")["n"][0] == 500
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite") == ["mirror.sqlite"]


def test_sql_errors_are_input_errors(store, path, tmp_path):
    with pytest.raises(InputError, match=r"no SQL mirror at .*run `custscore mirror` first"):
        run_sql(tmp_path / "missing.sqlite", "SELECT 1")
    mirror(store, path)
    with pytest.raises(InputError, match='SQL error: near "SELEC": syntax error'):
        run_sql(path, "SELEC 1")
    with pytest.raises(InputError, match="SQL error: no such table: nope"):
        run_sql(path, "SELECT * FROM nope")
    with pytest.raises(InputError, match="only one SQL statement"):
        run_sql(path, "SELECT 1; DROP TABLE customers")
    with pytest.raises(InputError, match="empty"):
        run_sql(path, "  -- nothing\n")
    assert run_sql(path, "SELECT count(*) AS n FROM customers;")["n"][0] == 500


def test_limit_and_introspection(store, path):
    mirror(store, path)
    frame = run_sql(path, "SELECT customer_id FROM customers ORDER BY customer_id", limit=3)
    assert list(frame["customer_id"]) == ["C0000001", "C0000002", "C0000003"] and frame.attrs["truncated"]
    assert not run_sql(path, "SELECT 1 AS one", limit=3).attrs["truncated"]
    assert "customer_id" in list(run_sql(path, "PRAGMA table_info(customers)")["name"])
    assert "ts" in list(run_sql(path, "SELECT name FROM pragma_table_info('events')")["name"])


def test_every_example_query_runs(store, path):
    mirror(store, path)
    results = {name: run_sql(path, sql) for name, sql in EXAMPLE_QUERIES.items()}
    assert {"satisfaction_by_age_group", "satisfaction_by_income_bracket", "churn_rate_by_region",
            "top_categories_by_revenue", "monthly_revenue"} <= set(results)
    for name, frame in results.items():
        assert len(frame) > 0, name
    by_age = results["satisfaction_by_age_group"]
    assert list(by_age.columns) == ["age_group", "customers", "avg_satisfaction"]
    assert by_age["avg_satisfaction"].between(1, 10).all()
    assert results["monthly_revenue"]["revenue"].sum() == pytest.approx(
        sum(e["amount"] for e in store["events"].find({})), rel=1e-6
    )


def test_example_queries_run_on_an_empty_mirror(tmp_path):
    empty = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    path = tmp_path / "mirror.sqlite"
    mirror(empty, path)
    for name, sql in EXAMPLE_QUERIES.items():
        frame = run_sql(path, sql)
        assert len(frame) == 0, name  # no rows, not an error and not a row of NULLs
        assert len(frame.columns) >= 2 and all(isinstance(c, str) and c for c in frame.columns), name


def test_scan_path_used_when_the_feed_cannot_replay(store, path, monkeypatch):
    # MongoDB change streams start at "now": the first copy scans, from a position taken before the scan
    monkeypatch.setattr(store, "backend", "mongodb")
    assert mirror(store, path).tables["events"].rows == store["events"].count()
    store["customers"].update_one({"_id": "C0000005"}, {"$set": {"age": 77}})
    report = mirror(store, path)
    assert report.tables["customers"].rows == 1 and report.tables["events"].rows == 0


def test_awkward_field_names_and_values(tmp_path, path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    store["customers"].insert_many([
        {"_id": "a", "customer_id": "a", 'odd "name"': 1, "Mixed": "x", "tags": ["p", "q"], "empty": {}, "when": LATER},
        {"_id": "b", "customer_id": "b", "mixed": "y", "nested": {"deep": {"er": 2.5}}, "when": None},
    ])
    mirror(store, path)
    frame = run_sql(path, "SELECT * FROM customers ORDER BY customer_id")
    assert frame['odd "name"'].tolist()[0] == 1
    assert frame["Mixed"].tolist() == ["x", "y"]  # SQLite column names ignore case: one column
    assert json.loads(frame["tags"][0]) == ["p", "q"]
    assert frame["nested__deep__er"].tolist()[1] == 2.5
    assert frame["when"][0] == "2026-07-01 09:30:00" and pd.isna(frame["when"][1])
    assert "empty" not in frame.columns
