"""Issue 13 item 4: `sql` has a time limit, a memory cap and only an allowed list of functions."""

from __future__ import annotations

import sqlite3

import pytest

from custscore.errors import InputError, LimitExceeded, QueryTimeout
from custscore.store.sql import run_sql
from tests.security.cli_helpers import assert_one_red_line, cli

FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
# the group_concat that grew to 420 MB, in 1 MB pieces so that the cap is reached at once
GROWING = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100) "
           "SELECT length(group_concat(printf('%.*c', 1000000, 'x'))) FROM c")


@pytest.fixture
def mirror(tmp_path):
    path = tmp_path / "mirror.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (_id TEXT, age INTEGER, region TEXT)")
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", [(f"C{i}", 20 + i, "north") for i in range(10)])
    conn.close()
    return path


def test_a_query_that_never_ends_stops_at_the_timeout(tmp_path, mirror):
    with pytest.raises(QueryTimeout, match=r"^the SQL query ran longer than 0.2 s and was stopped"):
        run_sql(mirror, FOREVER, timeout=0.2)
    assert_one_red_line(cli(tmp_path, "sql", FOREVER, "--timeout", "0.3"),
                        "the SQL query ran longer than 0.3 s and was stopped; narrow it, add LIMIT or raise --timeout")


def test_the_default_time_limit_is_30_seconds():
    import inspect

    assert inspect.signature(run_sql).parameters["timeout"].default == 30.0


def test_a_query_that_grows_without_bound_hits_the_memory_cap(mirror):
    with pytest.raises(LimitExceeded, match=r"^the SQL query needed more than 16 MB of memory and was stopped"):
        run_sql(mirror, GROWING, memory_limit=16 * 2**20, timeout=120)
    with sqlite3.connect(":memory:") as conn:  # the process-wide cap is lifted again afterwards
        assert conn.execute("PRAGMA hard_heap_limit").fetchone()[0] == 0
        assert conn.execute("SELECT length(group_concat(printf('%.*c', 1000000, 'x'))) FROM "
                            "(SELECT 1 FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
                            "LIMIT 30) SELECT x FROM c))").fetchone()[0] == 30_000_029  # 30 MB and the commas


@pytest.mark.parametrize("query, name", [
    ("SELECT hex(fts3_tokenizer('simple'))", "fts3_tokenizer"),
    ("SELECT fts3_tokenizer('evil', x'0000000000000000')", "fts3_tokenizer"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("SELECT length(zeroblob(1000000000))", "zeroblob"),
    ("SELECT sqlite_log(1, 'x')", "sqlite_log"),
])
def test_only_allowed_functions_run(tmp_path, mirror, query, name):
    with pytest.raises(InputError, match=rf"^the SQL function {name}\(\) is not allowed"):
        run_sql(mirror, query)
    assert_one_red_line(cli(tmp_path, "sql", query), f"the SQL function {name}() is not allowed")


def test_ordinary_functions_still_work(mirror):
    frame = run_sql(mirror, "SELECT region, count(*) AS n, round(avg(age), 1) AS a, "
                            "json_extract('{\"k\": 2}', '$.k') AS j, strftime('%Y', '2024-05-01') AS y, "
                            "row_number() OVER (ORDER BY region) AS r FROM customers GROUP BY region")
    assert frame.to_dict("records") == [{"region": "north", "n": 10, "a": 24.5, "j": 2, "y": "2024", "r": 1}]


@pytest.mark.parametrize("limit", ["-1", "9223372036854775808"])
def test_the_row_limit_is_validated(tmp_path, mirror, limit):
    assert_one_red_line(cli(tmp_path, "sql", "SELECT 1", "--limit", limit), f"--limit must be 0 up to 10,000,000, got {limit}")


def test_the_sql_command_passes_its_30_second_default_to_the_engine(tmp_path, mirror, monkeypatch):
    """The CLI, not only run_sql, has the time limit: a plain `custscore sql QUERY` is stopped after 30 s."""
    import pandas as pd

    from custscore.store import sql as sql_module

    asked = {}

    def spy(path, query, limit=None, timeout="not passed", **kw):
        asked["timeout"] = timeout
        return pd.DataFrame({"n": [1]})

    monkeypatch.setattr(sql_module, "run_sql", spy)
    (tmp_path / "mirror.sqlite").write_bytes(mirror.read_bytes())
    result = cli(tmp_path, "sql", FOREVER)
    assert result.exit_code == 0, result.output
    assert asked == {"timeout": 30.0}
