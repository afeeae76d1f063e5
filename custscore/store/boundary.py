"""Third-party errors turned into :mod:`custscore.errors` where the store meets its engines.

One mapping serves both backends. pymongo's error classes arrive from a MongoDB server
(store/mongo.py) and, with the same meanings, from mongomock's filter and aggregation
engines inside the embedded store; sqlite3's errors arrive from the embedded store's SQL.
Every message is one line that names the operation and, where the user can act, what to do.
Errors custscore raised on purpose pass through unchanged.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from bson.errors import InvalidBSON
from pymongo import errors as pm_errors

from custscore.errors import CustscoreError, DuplicateKeyError, InputError, StoreBusy, StoreError, StoreUnavailable
from custscore.store import limits, regex_guard

QUERY_HINT = "use query operators such as $gt, $in, $regex"
# MongoDB's codes for a filter it cannot read: BadValue, FailedToParse, TypeMismatch (mongomock sets no code)
BAD_QUERY_CODES = frozenset({2, 9, 14})


def refused_filter(reason: object) -> InputError:
    """The error for a filter the engine cannot evaluate, with the engine's reason."""
    return InputError(f"the filter was refused ({reason}); {QUERY_HINT}")


def _reason(exc: pm_errors.PyMongoError) -> str:
    """The server's own one-line message (pymongo appends the whole reply to ``str(exc)``)."""
    details = getattr(exc, "details", None)
    return str(details.get("errmsg") or exc) if isinstance(details, dict) else str(exc)


@contextmanager
def mapped(what: str, query: bool = False) -> Iterator[None]:
    """Run one store operation and raise its third-party errors as custscore errors.

    Parameters
    ----------
    what : str
        The operation, as a user reads it first in the message (``"find in customers"``).
    query : bool
        The block evaluates a user's filter: an engine's complaint about it (an unknown
        operator, a wrong operand, a bad pattern) is an :class:`InputError`
        ``the filter was refused (...)`` instead of a :class:`StoreError`.

    Raises
    ------
    DuplicateKeyError, StoreBusy, StoreUnavailable, StoreError, InputError, QueryTimeout
        The mapped error, chained to the original one.
    """
    try:
        yield
    except CustscoreError:
        raise
    except pm_errors.DuplicateKeyError as exc:
        raise DuplicateKeyError(f"{what}: duplicate key ({exc.details.get('keyValue') if exc.details else exc})") from exc
    except pm_errors.BulkWriteError as exc:
        first = (exc.details.get("writeErrors") or [{}])[0]
        if first.get("code") == 11000:
            raise DuplicateKeyError(f"{what}: duplicate key {first.get('keyValue')}") from exc
        raise StoreError(f"{what}: {first.get('errmsg', exc)}") from exc
    except pm_errors.ExecutionTimeout as exc:  # maxTimeMS from a query's time budget
        raise limits.timeout_error() from exc
    except pm_errors.ConnectionFailure as exc:
        raise StoreUnavailable(f"{what}: lost the connection to MongoDB ({exc})") from exc
    except pm_errors.OperationFailure as exc:
        if query and (exc.code is None or exc.code in BAD_QUERY_CODES):
            raise refused_filter(_reason(exc)) from exc
        raise StoreError(f"{what}: {_reason(exc)}") from exc
    except pm_errors.PyMongoError as exc:
        raise StoreError(f"{what}: {exc}") from exc
    except re.error as exc:  # mongomock compiling a $regex nobody checked first
        if isinstance(exc.pattern, str):
            regex_guard.compile_pattern(exc.pattern)  # the same message as a checked pattern, when it agrees
        raise refused_filter(f"$regex {exc.pattern!r} is not a valid pattern: {exc}") from exc
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreBusy(f"{what}: the embedded store is locked by another process ({exc}); "
                            "try again when it has finished") from exc
        raise StoreError(f"{what}: the embedded store failed ({exc})") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: the embedded store failed ({exc})") from exc
    except InvalidBSON as exc:  # bytes SQLite read back whole but that are no longer a document: a damaged file
        raise StoreError(f"{what}: the embedded store failed (a stored document is damaged: {exc})") from exc
    except (NotImplementedError, TypeError, ValueError) as exc:
        if query:  # mongomock's filter engine on an operand of the wrong shape, e.g. {"$and": 5}
            raise refused_filter(exc) from exc
        raise
