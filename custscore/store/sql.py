"""Read-only SQL over the SQLite mirror, and example queries to start from.

Writes are refused three times over: the file is opened with ``mode=ro``,
``PRAGMA query_only`` is on, and an authorizer allows only reading (tables,
functions and a few introspection pragmas), which also stops ``ATTACH`` and
``VACUUM INTO`` from creating files. Statements that start with a writing
keyword (DROP, INSERT, ATTACH, VACUUM ...) are refused before they reach
SQLite, and only one statement runs per call.
"""

from __future__ import annotations

import ctypes
import functools
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pandas as pd

from custscore.errors import InputError, LimitExceeded, QueryTimeout
from custscore.store import limits
from custscore.store.query import close_fields

_AGE_GROUP = (
    "CASE WHEN age < 25 THEN '18-24' WHEN age < 35 THEN '25-34' WHEN age < 45 THEN '35-44' "
    "WHEN age < 55 THEN '45-54' WHEN age < 65 THEN '55-64' ELSE '65+' END"
)
_INCOME_BRACKET = (
    "CASE WHEN income < 25000 THEN '1: <25k' WHEN income < 50000 THEN '2: 25k-50k' "
    "WHEN income < 75000 THEN '3: 50k-75k' WHEN income < 100000 THEN '4: 75k-100k' "
    "WHEN income < 150000 THEN '5: 100k-150k' ELSE '6: 150k+' END"
)

# name -> SQL; every query runs on any mirror (only columns that always exist).
EXAMPLE_QUERIES: dict[str, str] = {
    "satisfaction_by_age_group": f"""
SELECT {_AGE_GROUP} AS age_group,
       count(*) AS customers,
       round(avg(customer_satisfaction), 2) AS avg_satisfaction
FROM customers
WHERE age IS NOT NULL AND customer_satisfaction IS NOT NULL
GROUP BY age_group
ORDER BY min(age)""",
    "satisfaction_by_income_bracket": f"""
SELECT {_INCOME_BRACKET} AS income_bracket,
       count(*) AS customers,
       round(avg(customer_satisfaction), 2) AS avg_satisfaction,
       round(avg(purchase_history__total_spent), 2) AS avg_spent
FROM customers
WHERE income IS NOT NULL AND customer_satisfaction IS NOT NULL
GROUP BY income_bracket
ORDER BY income_bracket""",
    # Out of time, as models/labels.py defines churn: the cutoff is the newest event minus 90 days; customers who
    # had bought by the cutoff churned when they bought nothing in the 90 days after it. (Asking "no purchase in
    # the last 90 days" of today's data instead would label everyone who is merely quiet now.)
    "churn_rate_by_region": """
WITH cutoff AS (SELECT julianday(max(ts), '-90 days') AS day FROM events),
buyers AS (
  SELECT customer_id, max(julianday(ts) > (SELECT day FROM cutoff)) AS bought_after
  FROM events
  GROUP BY customer_id
  HAVING min(julianday(ts)) <= (SELECT day FROM cutoff)
)
SELECT coalesce(c.region, '(unknown)') AS region,
       count(*) AS customers,
       round(avg(1 - b.bought_after), 3) AS churn_rate
FROM buyers b JOIN customers c ON c.customer_id = b.customer_id
GROUP BY c.region
ORDER BY churn_rate DESC""",
    "top_categories_by_revenue": """
SELECT coalesce(category, '(unknown)') AS category,
       round(sum(amount), 2) AS revenue,
       count(*) AS orders,
       count(DISTINCT customer_id) AS customers,
       round(avg(amount), 2) AS avg_order
FROM events
GROUP BY category
ORDER BY revenue DESC
LIMIT 10""",
    "monthly_revenue": """
SELECT strftime('%Y-%m', ts) AS month,
       round(sum(amount), 2) AS revenue,
       count(*) AS orders,
       count(DISTINCT customer_id) AS active_customers
FROM events
GROUP BY month
ORDER BY month""",
}

_WRITE_START = {
    "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "ATTACH", "DETACH", "VACUUM",
    "REINDEX", "ANALYZE", "BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE",
}
_READ_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "pragma_list", "module_list",
}
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
# Only these functions may run: SQLite's core, date/time, math, JSON and window functions. Left out on
# purpose: fts3_tokenizer (returns/registers process pointers), load_extension, sqlite_log, randomblob and
# zeroblob (memory bombs) and the full-text/r-tree internals.
ALLOWED_FUNCTIONS = frozenset("""
abs acos acosh asin asinh atan atan2 atanh avg ceil ceiling char coalesce cos cosh count cume_dist
current_date current_time current_timestamp date datetime degrees dense_rank exp first_value floor format
glob group_concat hex ifnull iif instr json json_array json_array_length json_extract json_group_array
json_group_object json_object json_quote json_type json_valid julianday lag last_value lead length like
likelihood likely ln log log10 log2 lower ltrim max min mod nth_value ntile nullif percent_rank pi pow power
printf quote radians rank replace round row_number rtrim sign sin sinh sqrt strftime substr substring sum tan
tanh time total trim trunc typeof unicode unixepoch unlikely upper -> ->>
""".split())  # noqa: SIM905 - a word list reads better than 100 quoted names
DEFAULT_TIMEOUT_S = 30.0
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024  # PRAGMA hard_heap_limit while a user's statement runs
_COMMENT = re.compile(r"\s*(--[^\n]*(\n|$)|/\*.*?(\*/|$))", re.S)
_READ_ONLY_HINT = "change data with custscore commands, then run `custscore mirror` again"


def first_keyword(query: str) -> str:
    """The statement's first word in upper case, after comments and whitespace."""
    rest = query
    while (match := _COMMENT.match(rest)) and match.end() > 0:
        rest = rest[match.end():]
    word = re.match(r"\s*([A-Za-z]+)", rest)
    return word.group(1).upper() if word else ""


class _Guard:
    """An SQLite authorizer that allows reading only and remembers what it refused."""

    def __init__(self) -> None:
        self.refused: str | None = None
        self.function: str | None = None  # a function outside ALLOWED_FUNCTIONS

    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in ALLOWED_FUNCTIONS:
                return sqlite3.SQLITE_OK
            self.function = self.function or arg2
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        # table-valued pragma functions (pragma_table_info(...)) declare their schema this way
        if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_schema") and db == "main":
            return sqlite3.SQLITE_OK
        if self.refused is None:
            self.refused = f"PRAGMA {arg1}" if action == sqlite3.SQLITE_PRAGMA else _ACTION_NAMES.get(action, "writing")
        return sqlite3.SQLITE_DENY


_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in ("ATTACH", "DETACH", "INSERT", "UPDATE", "DELETE", "DROP_TABLE", "CREATE_TABLE", "CREATE_INDEX",
                 "CREATE_VIEW", "CREATE_TRIGGER", "ALTER_TABLE", "TRANSACTION", "ANALYZE", "REINDEX")
    if hasattr(sqlite3, f"SQLITE_{name}")
}


MAX_ROWS = 10_000_000


@functools.cache
def _heap_limit_function() -> Any:
    """``sqlite3_hard_heap_limit64`` of the SQLite this Python uses, or None if it cannot be reached."""
    try:
        import _sqlite3

        function = ctypes.CDLL(_sqlite3.__file__).sqlite3_hard_heap_limit64
    except (ImportError, OSError, AttributeError):
        return None
    function.restype, function.argtypes = ctypes.c_int64, [ctypes.c_int64]
    return function


def _set_heap_limit(limit: int, conn: sqlite3.Connection) -> int | None:
    """Set SQLite's process-wide hard heap limit; return the previous one (None when it cannot be restored).

    ``PRAGMA hard_heap_limit`` can only lower the limit, so the C function is called when it can be
    found: a long-running process gets its old limit back after each statement.
    """
    function = _heap_limit_function()
    if function is None:
        conn.execute(f"PRAGMA hard_heap_limit={limit}")
        return None
    return int(function(limit))


def _out_of_memory(memory_limit: int) -> LimitExceeded:
    return LimitExceeded(f"the SQL query needed more than {memory_limit / 2**20:g} MB of memory and was stopped; "
                         "aggregate less (e.g. count(*) instead of group_concat) or add LIMIT")


def _refuse(what: str) -> InputError:
    return InputError(f"the SQL mirror is read-only: {what} refused; {_READ_ONLY_HINT}")


def run_sql(
    path: Path, query: str, limit: int | None = None, timeout: float | None = DEFAULT_TIMEOUT_S,
    memory_limit: int = MEMORY_LIMIT_BYTES,
) -> pd.DataFrame:
    """Run one read-only SQL statement on the mirror and return the rows.

    Parameters
    ----------
    path : Path
        The mirror file written by :func:`custscore.store.mirror.mirror`.
    query : str
        One SELECT / WITH / VALUES / EXPLAIN statement, or an introspection
        PRAGMA such as ``PRAGMA table_info(customers)``.
    limit : int, optional
        Return at most this many rows; ``df.attrs["truncated"]`` says whether
        there were more.
    timeout : float, optional
        Stop the query after this many seconds (default 30; None or 0: no limit).
    memory_limit : int
        SQLite's heap may grow to this many bytes while the statement runs
        (``PRAGMA hard_heap_limit``; process-wide, restored afterwards).

    Returns
    -------
    pandas.DataFrame
        The result, columns named as in the query.

    Raises
    ------
    InputError
        The mirror does not exist, the statement writes or is not valid SQL,
        there is more than one statement, or calls a function not allowed.
    QueryTimeout
        The timeout passed.
    LimitExceeded
        The statement needed more memory than ``memory_limit``.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not 0 <= limit <= MAX_ROWS):
        raise LimitExceeded(f"--limit must be 0 up to {MAX_ROWS:,}, got {limit}")
    timeout = limits.check_timeout(timeout)
    if not isinstance(query, str) or not first_keyword(query):
        raise InputError("the SQL query is empty; give one statement such as SELECT count(*) FROM customers")
    if not path.is_file():
        raise InputError(f"no SQL mirror at {path}; run `custscore mirror` first")
    keyword = first_keyword(query)
    if keyword in _WRITE_START:
        raise _refuse(f"{keyword} statements are")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30.0)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"cannot open the SQL mirror at {path}: {exc}; run `custscore mirror --full`") from exc
    guard = _Guard()
    heap_before = None
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # load the schema before the guard
        heap_before = _set_heap_limit(int(memory_limit), conn)
        conn.set_authorizer(guard)
        if timeout is not None:
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        cursor = conn.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit + 1)
    except MemoryError as exc:
        raise _out_of_memory(memory_limit) from exc
    except OverflowError as exc:
        raise InputError(f"SQL error: {exc}; use numbers of at most 8 bytes") from exc
    except (sqlite3.Warning, sqlite3.ProgrammingError) as exc:  # Python < 3.11 raised Warning for several statements
        if "one statement" in str(exc):
            raise InputError("only one SQL statement per call; remove everything after the first ';'") from exc
        raise InputError(f"SQL error: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        if guard.function is not None:
            raise InputError(f"the SQL function {guard.function}() is not allowed; use SQLite's core, date, math, "
                             "JSON and window functions (e.g. count, round, strftime, json_extract)") from exc
        if guard.refused is not None:
            raise _refuse(f"{guard.refused} is") from exc
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            raise _refuse(f"{keyword} statements are") from exc
        if message == "interrupted" and timeout is not None:
            raise QueryTimeout(f"the SQL query ran longer than {timeout:g} s and was stopped; narrow it, add LIMIT "
                               "or raise --timeout") from exc
        if "out of memory" in message:
            raise _out_of_memory(memory_limit) from exc
        raise InputError(f"SQL error: {message}{_column_hint(message)}") from exc
    finally:
        conn.set_authorizer(None)
        if heap_before is not None:
            _set_heap_limit(heap_before, conn)
        conn.close()
    truncated = limit is not None and len(rows) > limit
    frame = pd.DataFrame(rows[:limit] if truncated else rows, columns=columns)
    frame.attrs["truncated"] = truncated
    return frame


ID_COLUMNS = {"customers": "customer_id", "events": "event_id", "predictions": "prediction_id"}


def _column_hint(message: str) -> str:
    """What to say after SQLite's ``no such column``: the mirror's id columns, or where the columns are listed."""
    if not message.startswith("no such column"):
        return ""
    if message.rsplit(".", 1)[-1].rsplit(" ", 1)[-1] == "_id":
        return ("; the mirror's id column is customer_id (events: event_id, predictions: prediction_id), "
                "not _id")
    return "; see the columns with: custscore sql --schema TABLE (tables: custscore sql --tables)"


def _read_only(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise InputError(f"no SQL mirror at {path}; run `custscore mirror` first")
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=30.0)


def mirror_tables(path: Path) -> pd.DataFrame:
    """The mirror's tables with their row and column counts (``custscore sql --tables``).

    Returns
    -------
    pandas.DataFrame
        Columns ``table``, ``rows``, ``columns``, ``id column``, sorted by table name.
    """
    conn = _read_only(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name")]
        rows = [(name, conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0],
                 len(conn.execute(f'PRAGMA table_info("{name}")').fetchall()), ID_COLUMNS.get(name, "-"))
                for name in names]
    finally:
        conn.close()
    return pd.DataFrame(rows, columns=["table", "rows", "columns", "id column"])


def mirror_schema(path: Path, table: str) -> pd.DataFrame:
    """The columns of one mirror table (``custscore sql --schema TABLE``): name, SQLite type, primary key.

    Raises
    ------
    InputError
        No such table; the message names close matches and ``--tables``.
    """
    known = list(mirror_tables(path)["table"])
    if table not in known:
        matches = close_fields(table, known)
        hint = f"did you mean {' or '.join(matches)}?" if matches else "list them with: custscore sql --tables"
        raise InputError(f"--schema {table!r}: the mirror has no such table; {hint}")
    conn = _read_only(path)
    try:
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    finally:
        conn.close()
    return pd.DataFrame([(r[1], r[2] or "-", "yes" if r[5] else "") for r in info],
                        columns=["column", "type", "primary key"])
