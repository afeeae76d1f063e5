"""The SQLite side of the embedded store: connection, transactions, tables, sequence.

One table per collection (``c_<name>``): ``pos`` keeps insertion order, ``id``
is the BSON encoding of the document's ``_id`` (exact, type-preserving), ``seq``
is a store-wide monotonically increasing number bumped by every write (the
change feed reads it), ``version`` counts the writes to that document, ``doc``
is the BSON document and ``ix_*`` columns mirror declared indexed fields. An update also keeps the row's
previous ``seq`` in ``prev_seq`` and the top-level fields it changed in ``touched`` (NULL when inserted), so the
change feed can leave out a write confined to ignored fields once the change before it was read (store/feed.py).

WAL mode lets readers in other processes run while one process writes; a
write transaction is ``BEGIN IMMEDIATE`` so writers queue instead of failing,
and a killed writer leaves only whole transactions behind.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from custscore.errors import InputError, StoreBusy, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,120}$")
BUSY_TIMEOUT_S = 60.0  # how long a one-shot command waits for another process's write lock
WAIT_FIRST_S, WAIT_LONGEST_S = 1.0, 30.0  # long-running processes: first and longest wait between reports


def table_name(collection: str) -> str:
    """SQL table holding a collection; refuses names that are not plain identifiers."""
    if not _NAME.match(collection):
        raise InputError(
            f"collection name {collection!r} is not allowed; use letters, digits and '_' (start with a letter)"
        )
    return f"c_{collection}"


def index_column(field_name: str) -> str:
    """SQL column mirroring an indexed (possibly dotted) field."""
    if not _FIELD.match(field_name) or ".." in field_name or field_name.endswith("."):
        raise InputError(f"cannot index field {field_name!r}; use a plain or dotted field name")
    return "ix_" + field_name.replace(".", "__")


class SQLiteEngine:
    """A thread-safe SQLite connection with nested write transactions."""

    def __init__(self, path: Path | None):
        self.path = path
        target = ":memory:"
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create {path.parent} for the embedded store: {exc.strerror}") from exc
            target = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._indexes: dict[str, dict[str, str]] = {}
        self._tables: set[str] = set()
        self._legacy: set[str] = set()  # tables made before prev_seq/touched: upgraded on their first update
        self._schema_version = -1
        # set by store.locking.wait_for_write_lock: long-running processes wait for a held lock instead of failing
        self.lock_wait: Callable[[float], None] | None = None
        try:
            self.conn = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            if path is not None:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            if not self._has_meta():  # a store made before needs no write to open (another process may hold the lock)
                self._create_meta()
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(
                f"cannot open the embedded store at {target}: {exc}; "
                "move the file away or choose another --home"
            ) from exc

    def _has_meta(self) -> bool:
        tables = self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_meta_indexes', '_meta_sequence')"
        ).fetchone()[0]
        return tables == 2 and self.conn.execute("SELECT count(*) FROM _meta_sequence WHERE id = 1").fetchone()[0] == 1

    def _create_meta(self) -> None:
        with self.write():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS _meta_indexes ("
                "collection TEXT NOT NULL, field TEXT NOT NULL, unique_ INTEGER NOT NULL, "
                "PRIMARY KEY (collection, field))"
            )
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS _meta_sequence (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)"
            )
            self.conn.execute("INSERT OR IGNORE INTO _meta_sequence (id, seq) VALUES (1, 0)")

    # -- transactions -------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested calls join the outermost one."""
        with self._lock:
            if self._depth == 0:
                self._begin()
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._execute_mapped("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Exclusive use of the connection for a read."""
        with self._lock:
            yield self.conn

    @property
    def in_write(self) -> bool:
        """Whether a write transaction is open (in this thread, when called under :meth:`read` or :meth:`snapshot`)."""
        return self._depth > 0

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one consistent state (joins a write already open)."""
        with self._lock:
            if self._depth:
                yield self.conn
                return
            self.conn.execute("BEGIN DEFERRED")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``: wait for another process's write lock, up to BUSY_TIMEOUT_S, or for
        good with growing waits (each reported to ``lock_wait``) when ``lock_wait`` is set."""
        waited, attempt = 0.0, WAIT_FIRST_S
        while True:
            if self.lock_wait is not None:
                self.conn.execute(f"PRAGMA busy_timeout={int(attempt * 1000)}")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"embedded store refused a write ({exc})") from exc
                if self.lock_wait is None:
                    raise StoreBusy(
                        f"the embedded store {self.path} is locked by another process that is writing to it "
                        f"(waited {BUSY_TIMEOUT_S:g} s); try again when it has finished"
                    ) from exc
            waited += attempt
            self.lock_wait(waited)
            attempt = min(attempt * 2, WAIT_LONGEST_S)

    def _execute_mapped(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"embedded store is busy or read-only ({exc}); another writer holds it, try again") from exc

    def next_seq(self, count: int) -> int:
        """Reserve ``count`` sequence numbers inside the current write; return the first."""
        (last,) = self.conn.execute(
            "UPDATE _meta_sequence SET seq = seq + ? WHERE id = 1 RETURNING seq", (count,)
        ).fetchone()
        return last - count + 1

    def current_seq(self) -> int:
        """The highest sequence number handed out so far."""
        with self.read() as conn:
            return conn.execute("SELECT seq FROM _meta_sequence WHERE id = 1").fetchone()[0]

    # -- tables and indexes -------------------------------------------------------
    def _schema(self, conn: sqlite3.Connection) -> None:
        """Reload the tables and indexes known to this process whenever any process changed the schema."""
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        if version != self._schema_version:
            self._indexes = {}
            for coll, field_name, _unique in conn.execute("SELECT collection, field, unique_ FROM _meta_indexes"):
                self._indexes.setdefault(coll, {})[field_name] = index_column(field_name)
            self._tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._legacy = {name for name in self._tables if name.startswith("c_") and "touched" not in
                            {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')}}
            self._schema_version = version

    def table_exists(self, collection: str) -> bool:
        """Whether the collection's table exists (another process may have made it)."""
        table = table_name(collection)
        with self.read() as conn:
            self._schema(conn)
            return table in self._tables

    def ensure_table(self, collection: str) -> str:
        """Create the collection's table if needed and return its name."""
        table = table_name(collection)
        if self.table_exists(collection):
            return table
        with self.write() as conn:
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{table}" (pos INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, '
                "seq INTEGER NOT NULL, version INTEGER NOT NULL, doc BLOB NOT NULL, prev_seq INTEGER, touched TEXT)"
            )
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{table}__seq" ON "{table}" (seq)')
        return table

    def has_feed_columns(self, collection: str) -> bool:
        """Whether the collection's table has ``prev_seq`` and ``touched`` (a table made before them gets them on
        its first update: opening a store never writes)."""
        with self.read() as conn:
            self._schema(conn)
            return table_name(collection) not in self._legacy

    def upgrade_for_update(self, conn: sqlite3.Connection, collection: str) -> None:
        """Inside a write, before an UPDATE of the collection's rows: add ``prev_seq``/``touched`` if missing."""
        table = table_name(collection)
        if table in self._legacy:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN prev_seq INTEGER')
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN touched TEXT')
            self._legacy.discard(table)
            self._schema_version = -1  # reloaded after the write: a rolled-back upgrade leaves the table as it was

    def indexes(self, collection: str) -> dict[str, str]:
        """Indexed field -> SQL column, reloaded whenever any process changed the schema."""
        with self.read() as conn:
            self._schema(conn)
            return self._indexes.get(collection, {})

    def indexes_if_table(self, collection: str) -> dict[str, str] | None:
        """The collection's indexed field -> SQL column, or None when it has no table: one schema check instead of
        :meth:`table_exists` then :meth:`indexes` (for a read's plan, or inside a write: the lock is re-entrant)."""
        with self.read() as conn:
            self._schema(conn)
            if table_name(collection) not in self._tables:
                return None
            return self._indexes.get(collection, {})


    def list_tables(self) -> list[str]:
        """Collections that have a table."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\' ORDER BY name"
            ).fetchall()
        return [r[0][2:] for r in rows]

    def drop_table(self, collection: str) -> None:
        """Drop a collection's table and its index metadata."""
        table = table_name(collection)
        with self.write() as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            conn.execute("DELETE FROM _meta_indexes WHERE collection = ?", (collection,))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            try:
                self.conn.close()
            except sqlite3.Error:  # pragma: no cover - closing twice or a dead handle
                log.debug("closing the embedded store failed", exc_info=True)
