"""Read-only SQL over the SQLite mirror, and example queries to start from.

Writes are refused three times over: the file is opened with ``mode=ro``,
``PRAGMA query_only`` is on, and an authorizer allows only reading (tables,
functions and a few introspection pragmas), which also stops ``ATTACH`` and
``VACUUM INTO`` from creating files. Statements that start with a writing
keyword (DROP, INSERT, ATTACH, VACUUM ...) are refused before they reach
SQLite, and only one statement runs per call.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pandas as pd

from custscore.errors import InputError

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
    # churned = bought before, but nothing in the 90 days before the newest event in the data
    "churn_rate_by_region": """
SELECT coalesce(region, '(unknown)') AS region,
       count(*) AS customers,
       round(avg(julianday(purchase_history__last_purchase)
                 < julianday((SELECT max(ts) FROM events), '-90 days')), 3) AS churn_rate
FROM customers
WHERE purchase_history__last_purchase IS NOT NULL
GROUP BY region
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
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
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

    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
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


def _refuse(what: str) -> InputError:
    return InputError(f"the SQL mirror is read-only: {what} refused; {_READ_ONLY_HINT}")


def run_sql(path: Path, query: str, limit: int | None = None, timeout: float | None = None) -> pd.DataFrame:
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
        Stop the query after this many seconds.

    Returns
    -------
    pandas.DataFrame
        The result, columns named as in the query.

    Raises
    ------
    InputError
        The mirror does not exist, the statement writes or is not valid SQL,
        there is more than one statement, or the timeout passed.
    """
    path = Path(path)
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
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
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # load the schema before the guard
        conn.set_authorizer(guard)
        if timeout is not None:
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        cursor = conn.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit + 1)
    except (sqlite3.Warning, sqlite3.ProgrammingError) as exc:  # Python < 3.11 raised Warning for several statements
        if "one statement" in str(exc):
            raise InputError("only one SQL statement per call; remove everything after the first ';'") from exc
        raise InputError(f"SQL error: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        if guard.refused is not None:
            raise _refuse(f"{guard.refused} is") from exc
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            raise _refuse(f"{keyword} statements are") from exc
        if message == "interrupted" and timeout is not None:
            raise InputError(f"the SQL query ran longer than {timeout:g}s and was stopped; narrow it or add LIMIT") from exc
        raise InputError(f"SQL error: {message}") from exc
    finally:
        conn.close()
    truncated = limit is not None and len(rows) > limit
    frame = pd.DataFrame(rows[:limit] if truncated else rows, columns=columns)
    frame.attrs["truncated"] = truncated
    return frame
