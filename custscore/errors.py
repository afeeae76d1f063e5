"""User-facing errors.

Every error a user can cause or meet is a :class:`CustscoreError`; the CLI turns
it into one red line and exit code 1. Third-party errors (pymongo, sqlite3,
pandas) are mapped at the boundary with ``raise OurError(...) from exc``.

::

    CustscoreError
    ├── ConfigError            bad setting, flag or environment variable
    ├── ModelError             a model cannot be saved, found, promoted or loaded
    │   └── ArtifactIntegrityError  a model file is missing, changed or unsafe
    ├── InputError             a file or value the user gave cannot be used
    │   ├── ValidationError    documents that break the schema (carries the rows)
    │   └── LimitExceeded      a document, query or request is past a stated limit
    │       └── QueryTimeout   a query or SQL statement ran past its time budget
    └── StoreError             the database refused or failed an operation
        ├── StoreUnavailable   cannot connect / open the store
        ├── DuplicateKeyError  a document with that _id already exists
        ├── StoreBusy          another process holds the embedded store's write lock
        └── ChangeFeedLost     a resume token is older than the feed's history
"""

from __future__ import annotations


class CustscoreError(Exception):
    """Base of every error custscore raises on purpose; ``str()`` is the user message."""


class ConfigError(CustscoreError):
    """A setting, flag or environment variable has an unusable value."""


class InputError(CustscoreError):
    """A file or value supplied by the user cannot be used."""


class ValidationError(InputError):
    """Documents failed validation; ``problems`` lists ``(index, field, reason)``."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class LimitExceeded(InputError):
    """A document, query or request is past one of the limits in README "Security and limits"."""


class QueryTimeout(LimitExceeded):
    """A query or SQL statement ran longer than its time budget and was stopped."""


class StoreError(CustscoreError):
    """The database refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened."""


class StoreBusy(StoreError):
    """Another process holds the embedded store's write lock for longer than this command waits."""


class DuplicateKeyError(StoreError):
    """An insert used an ``_id`` that already exists."""


class ChangeFeedLost(StoreError):
    """A resume token points before the oldest history the change feed still has."""


class ModelError(CustscoreError):
    """A model cannot be saved, found, promoted or loaded."""


class ArtifactIntegrityError(ModelError):
    """A model artifact or manifest is missing, does not match its recorded hash, or is unsafe to load."""
