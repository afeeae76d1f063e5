"""The SQLite mirror: customers, events, predictions and pipeline outputs as flat SQL tables.

Documents are flattened (``purchase_history.categories.books`` becomes the
column ``purchase_history__categories__books``), lists and SHAP vectors are
stored as JSON text and datetimes as ISO-8601 text (``YYYY-MM-DD HH:MM:SS``,
plus ``.fff`` when there are milliseconds) so SQLite's date functions work.

Copies are incremental: ``_mirror_state`` keeps the change-feed token of each
collection and the next run copies only what the feed reports after it,
upserting by primary key. A run is one SQLite transaction (WAL mode), so
readers see the old mirror or the new one, never half of it. Deletions are
not in the change feed; they are found when the mirror holds more rows than
the store and reconciled by ``_id``.

Stats tables (``stats_<name>``, pipeline outputs) are refreshed only when one
of their source collections changed: each collection's row of ``_mirror_state``
counts the rows the mirror ever copied or deleted for it (``changes``), each
stats table's row records those counters as they were when it was computed,
and a run recomputes a stats table only when a counter moved (or the table is
missing). Sources are copied before their stats are computed, so a write that
lands in between shows up as a change next time rather than being missed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from custscore.errors import ChangeFeedLost, InputError, StoreError
from custscore.store.base import Store
from custscore.store.flatten import flatten, quote, sql_type, sql_value
from custscore.store.loading import chunks
from custscore.store.schema import CUSTOMERS, EVENTS, PREDICTIONS

log = logging.getLogger(__name__)

BATCH = 5000
STATE_TABLE = "_mirror_state"
_SAVE_STATE = (f"INSERT OR REPLACE INTO {STATE_TABLE} (collection, token, source, rows, mirrored_at, changes) "
               "VALUES (?, ?, ?, ?, ?, ?)")
STATS_PREFIX = "stats_"
_STATS_NAME = re.compile(r"^[A-Za-z0-9_]{1,60}$")

# collection -> (primary key column, base columns created even before any document has them)
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    CUSTOMERS: ("customer_id", {
        "customer_id": "TEXT", "age": "INTEGER", "income": "REAL", "region": "TEXT", "channel": "TEXT",
        "signup_date": "TEXT", "support_tickets": "INTEGER", "customer_satisfaction": "INTEGER",
        "purchase_history__orders": "INTEGER", "purchase_history__items": "INTEGER",
        "purchase_history__total_spent": "REAL", "purchase_history__first_purchase": "TEXT",
        "purchase_history__last_purchase": "TEXT", "updated_at": "TEXT",
    }),
    EVENTS: ("event_id", {
        "event_id": "TEXT", "customer_id": "TEXT", "ts": "TEXT", "amount": "REAL", "category": "TEXT",
        "product_id": "TEXT", "quantity": "INTEGER", "channel": "TEXT", "ingested_at": "TEXT",
    }),
    PREDICTIONS: ("prediction_id", {"prediction_id": "TEXT"}),
}
ALWAYS_CREATED = (CUSTOMERS, EVENTS)  # predictions only once the collection has documents
INDEXED = ("customer_id", "region", "channel", "ts", "signup_date", "scored_at")

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class StatsTable:
    """A pipeline output the mirror keeps as ``stats_<name>``: the collections it reads and how to compute it."""

    sources: tuple[str, ...]
    compute: Callable[[], pd.DataFrame]


@dataclass
class TableCopy:
    """What one run did to one mirror table (``kept``: a stats table left as it was, its sources unchanged)."""

    rows: int = 0
    seconds: float = 0.0
    deleted: int = 0
    total: int = 0
    kept: bool = False


@dataclass
class MirrorReport:
    """Per table: rows copied (upserted or replaced), rows deleted, rows now in the table, seconds."""

    path: Path
    full: bool
    tables: dict[str, TableCopy] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows copied over all tables."""
        return sum(t.rows for t in self.tables.values())

    @property
    def refreshed(self) -> list[str]:
        """The stats tables recomputed by this run."""
        return [n for n, t in self.tables.items() if n.startswith(STATS_PREFIX) and not t.kept]

    @property
    def kept(self) -> list[str]:
        """The stats tables left as they were (their sources did not change)."""
        return [n for n, t in self.tables.items() if t.kept]


def _key_text(value: Any) -> str:
    return value if isinstance(value, str) else str(sql_value(value))


class _Table:
    """One mirror table: its columns (case-insensitive, as SQLite sees them) and upserts into it."""

    def __init__(self, conn: sqlite3.Connection, name: str, key: str, base: dict[str, str]):
        self.conn, self.name, self.key = conn, name, key
        info = conn.execute(f"PRAGMA table_info({quote(name)})").fetchall()
        if not info:
            cols = ", ".join(f"{quote(c)} {t}{' PRIMARY KEY' if c == key else ''}" for c, t in base.items())
            conn.execute(f"CREATE TABLE {quote(name)} ({cols})")
            info = conn.execute(f"PRAGMA table_info({quote(name)})").fetchall()
        self.columns = [row[1] for row in info]
        self.lower = {c.lower(): c for c in self.columns}
        self.pos = {c: i for i, c in enumerate(self.columns)}  # flattened field -> column position
        self.ensure_indexes()

    def ensure_indexes(self) -> None:
        for column in INDEXED:
            if column in self.lower and column != self.key:
                index = quote(f"ix_{self.name}__{column}")
                self.conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {quote(self.name)} ({quote(column)})")

    def _column(self, name: str, value: Any) -> int:
        """Position of the column for a flattened field, added (typed by ``value``) when new."""
        column = self.lower.get(name.lower())
        if column is None:
            self.conn.execute(f"ALTER TABLE {quote(self.name)} ADD COLUMN {quote(name)} {sql_type(value)}")
            log.info("mirror %s: new column %s", self.name, name)
            column = name
            self.columns.append(name)
            self.lower[name.lower()] = name
            self.ensure_indexes()
        self.pos[name] = self.columns.index(column)
        return self.pos[name]

    def upsert(self, docs: list[dict]) -> int:
        pos, key = self.pos, self.key
        rows = []
        for doc in docs:
            flat = flatten(doc)
            doc_id = flat.pop("_id")
            flat[key] = doc_id if type(doc_id) is str else str(doc_id)
            row = [None] * len(self.columns)
            for name, value in flat.items():
                i = pos.get(name)
                if i is None:
                    if value is None:
                        continue  # no column needed for a field that is empty everywhere so far
                    i = self._column(name, value)
                    row.extend([None] * (len(self.columns) - len(row)))
                row[i] = value
            rows.append(row)
        width = len(self.columns)
        for row in rows:  # columns added during the batch: earlier rows are shorter
            if len(row) < width:
                row.extend([None] * (width - len(row)))
        names = ", ".join(quote(c) for c in self.columns)
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in self.columns if c != key)
        self.conn.executemany(
            f"INSERT INTO {quote(self.name)} ({names}) VALUES ({', '.join('?' * width)}) "
            f"ON CONFLICT({quote(key)}) DO UPDATE SET {sets}",
            rows,
        )
        return len(rows)

    def count(self) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {quote(self.name)}").fetchone()[0]


def _replays_history(store: Store) -> bool:
    """Whether ``changes(after=None)`` replays every document (embedded) or starts at "now" (MongoDB)."""
    return store.backend in ("embedded", "memory")


def _feed(store: Store, name: str, token: str | None) -> Iterator[tuple[list[dict], str | None]]:
    """Batches of changed documents and the token to resume after each."""
    if token is None and not _replays_history(store):
        position = store.feed_position(name)  # taken before the scan: nothing written during it is missed
        for chunk in chunks(store.collection(name).find({}), BATCH):
            yield chunk, None
        yield [], position
        return
    while True:
        batch = store.changes(name, after=token, limit=BATCH)
        token = batch.token or token
        yield [c.document for c in batch.changes], token
        if len(batch.changes) < BATCH:
            return


def _reconcile_deletes(store: Store, name: str, table: _Table) -> int:
    """Delete mirror rows whose document is gone; only looked at when the mirror has more rows than the store."""
    if table.count() <= store.collection(name).count():
        return 0
    alive = {_key_text(d["_id"]) for d in store.collection(name).find({}, {"_id": 1})}
    mirrored = [r[0] for r in table.conn.execute(f"SELECT {quote(table.key)} FROM {quote(table.name)}")]
    gone = [(k,) for k in mirrored if k not in alive]
    table.conn.executemany(f"DELETE FROM {quote(table.name)} WHERE {quote(table.key)} = ?", gone)
    return len(gone)


def _copy_collection(
    store: Store, conn: sqlite3.Connection, name: str, token: str | None, on_progress: Progress | None, had_rows: int = 0
) -> tuple[TableCopy, str | None]:
    started = time.perf_counter()
    key, base = TABLES[name]
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    if not exists and (had_rows or name in ALWAYS_CREATED):
        token = None  # the table was dropped behind our back: copy it whole
    incremental = bool(exists) and token is not None
    table = _Table(conn, name, key, base) if exists or name in ALWAYS_CREATED else None
    copy = TableCopy()
    try:
        for docs, token_after in _feed(store, name, token):
            if docs:
                table = table or _Table(conn, name, key, base)
                copy.rows += table.upsert(docs)
                if on_progress:
                    on_progress(name, len(docs))
            token = token_after or token
    except ChangeFeedLost as exc:
        log.warning("mirror %s: %s; copying it again from scratch", name, exc)
        conn.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        return _copy_collection(store, conn, name, None, on_progress)
    if table is not None:
        if incremental:
            copy.deleted = _reconcile_deletes(store, name, table)
        copy.total = table.count()
    copy.seconds = time.perf_counter() - started
    return copy, token


def _check_stats(stats: Mapping[str, StatsTable]) -> None:
    """Refuse stats tables that cannot become ``stats_<name>`` tables or whose sources are not mirrored, before any copying."""
    for name, entry in stats.items():
        if not isinstance(name, str) or not _STATS_NAME.match(name):
            raise InputError(f"pipeline frame name {name!r} cannot be a table name; use letters, digits and '_'")
        unknown = [s for s in entry.sources if s not in TABLES]
        if unknown or not entry.sources:
            raise InputError(f"stats table {name!r} reads {unknown or 'no collection'}; its sources must be among "
                             f"the mirrored collections {', '.join(TABLES)}")


def _stats_state(conn: sqlite3.Connection, name: str) -> str | None:
    """The recorded source counters of ``stats_<name>`` when the table still exists, else None."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (STATS_PREFIX + name,)).fetchone()
    row = conn.execute(f"SELECT token FROM {STATE_TABLE} WHERE collection = ?", (STATS_PREFIX + name,)).fetchone()
    return row[0] if exists and row else None


def _refresh_stats(conn: sqlite3.Connection, name: str, entry: StatsTable, counters: dict[str, int],
                   location: str, now: Any) -> TableCopy:
    """Recompute ``stats_<name>`` when a source's change counter moved since it was computed, else keep it."""
    started = time.perf_counter()
    seen = json.dumps({source: counters.get(source, 0) for source in sorted(entry.sources)})
    if _stats_state(conn, name) == seen:
        total = conn.execute(f"SELECT count(*) FROM {quote(STATS_PREFIX + name)}").fetchone()[0]
        return TableCopy(total=total, kept=True, seconds=time.perf_counter() - started)
    frame = entry.compute()
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"pipeline frame {name!r} is a {type(frame).__name__}, expected a pandas DataFrame")
    copy = _write_frame(conn, name, frame)
    conn.execute(_SAVE_STATE,
                 (STATS_PREFIX + name, seen, location, copy.total, now, 0))
    copy.seconds = time.perf_counter() - started
    return copy


def _write_frame(conn: sqlite3.Connection, name: str, frame: pd.DataFrame) -> TableCopy:
    """Replace ``stats_<name>`` with the frame's rows (a named index becomes columns)."""
    started = time.perf_counter()
    if any(n is not None for n in frame.index.names):
        frame = frame.reset_index()
    columns = [str(c) for c in frame.columns]
    if len({c.lower() for c in columns}) != len(columns):
        raise InputError(f"pipeline frame {name!r} has duplicate column names {columns}; rename them")
    rows = [[sql_value(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    types = []
    for i in range(len(columns)):
        first = next((r[i] for r in rows if r[i] is not None), None)
        types.append(sql_type(first) if first is not None else "")
    table = quote(STATS_PREFIX + name)
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} ({', '.join(f'{quote(c)} {t}'.strip() for c, t in zip(columns, types, strict=True))})")
    conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
    return TableCopy(rows=len(rows), seconds=time.perf_counter() - started, total=len(rows))


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")  # readers keep the old mirror while a run writes
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    except (OSError, sqlite3.DatabaseError) as exc:
        raise StoreError(f"cannot open the SQL mirror at {path}: {exc}; delete it and run `custscore mirror --full`") from exc


def mirror(
    store: Store,
    path: Path,
    stats: Mapping[str, StatsTable] | None = None,
    on_progress: Progress | None = None,
    full: bool = False,
) -> MirrorReport:
    """Copy what changed in the store since the last run into the SQLite mirror at ``path``.

    Parameters
    ----------
    store : Store
        The document store to read (any backend).
    path : Path
        The mirror file, normally ``Settings.home / "mirror.sqlite"``; created if missing.
    stats : dict of str to StatsTable, optional
        Pipeline outputs kept as ``stats_<name>``. Each is recomputed only when one of its
        source collections changed since it was last computed (or its table is missing);
        otherwise it is kept (``TableCopy.kept``). Stats tables not passed are kept as they are.
    on_progress : callable, optional
        Called as ``on_progress(table, rows)`` after every copied batch of a collection, and
        once per stats table (``stats_<name>``, its rows; 0 when it was kept).
    full : bool
        Drop the mirror's tables and copy everything again.

    Returns
    -------
    MirrorReport
        Rows copied and seconds taken per table.

    Raises
    ------
    StoreError
        The mirror file cannot be opened or written.
    InputError
        A stats table's name, sources or computed frame cannot become a table.
    """
    started = time.perf_counter()
    path = Path(path)
    stats = stats or {}
    _check_stats(stats)
    report = MirrorReport(path=path, full=full)
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        state = _read_state(conn)
        if not full and any(source != store.location for _, source, _, _ in state.values()):
            log.warning("mirror %s was copied from another store; rebuilding it from %s", path, store.location)
            full = report.full = True
        if full:
            _drop_all(conn)
            state = {}
        now = sql_value(dt.datetime.now(dt.UTC).replace(tzinfo=None))
        counters: dict[str, int] = {}
        for name in TABLES:
            token, _, had_rows, changes = state.get(name, (None, None, 0, 0))
            copy, token = _copy_collection(store, conn, name, token, on_progress, had_rows or 0)
            report.tables[name] = copy
            counters[name] = (changes or 0) + copy.rows + copy.deleted
            conn.execute(
                _SAVE_STATE,
                (name, token, store.location, copy.total, now, counters[name]),
            )
            log.info("mirror %s: %d rows copied, %d deleted in %.2fs", name, copy.rows, copy.deleted, copy.seconds)
        for name, entry in stats.items():
            copy = report.tables[STATS_PREFIX + name] = _refresh_stats(conn, name, entry, counters, store.location, now)
            log.info("mirror %s%s: %s in %.2fs", STATS_PREFIX, name,
                     "kept (sources unchanged)" if copy.kept else f"{copy.rows} rows", copy.seconds)
            if on_progress:
                on_progress(STATS_PREFIX + name, copy.rows)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"writing the SQL mirror at {path} failed: {exc}; run `custscore mirror --full`") from exc
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    report.seconds = time.perf_counter() - started
    return report


def _read_state(conn: sqlite3.Connection) -> dict[str, tuple]:
    """``_mirror_state`` as {collection or stats table: (token, source, rows, changes)}, created (or given its
    ``changes`` column, for a mirror made before stats were tracked) when needed."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (collection TEXT PRIMARY KEY, token TEXT, "
        "source TEXT, rows INTEGER, mirrored_at TEXT, changes INTEGER NOT NULL DEFAULT 0)"
    )
    if "changes" not in [r[1] for r in conn.execute(f"PRAGMA table_info({STATE_TABLE})")]:
        conn.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN changes INTEGER NOT NULL DEFAULT 0")
    rows = conn.execute(f"SELECT collection, token, source, rows, changes FROM {STATE_TABLE}")
    return {c: (t, s, n, k) for c, t, s, n, k in rows}


def _drop_all(conn: sqlite3.Connection) -> None:
    """Remove every mirror table (customers, events, predictions, stats_*, state) for a rebuild."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in names:
        if name in TABLES or name.startswith(STATS_PREFIX):
            conn.execute(f"DROP TABLE {quote(name)}")
    conn.execute(f"DELETE FROM {STATE_TABLE}")
