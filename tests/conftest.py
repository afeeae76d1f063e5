"""Shared fixtures: a fresh isolated store per test, on every backend."""

from __future__ import annotations

import os
import uuid

import pytest

# pytest-xdist workers inherit COLUMNS=80 from their launcher; the CLI honours COLUMNS when piped, so without this
# the output the tests read would depend on how the suite was started. Tests that need a width set it themselves.
os.environ.pop("COLUMNS", None)

from custscore.config import Settings  # noqa: E402
from custscore.store import open_store  # noqa: E402

MONGO_URI = os.environ.get("CUSTSCORE_TEST_MONGO_URI")
BACKENDS = ["memory", "embedded", "pymongo-adapter", "mongodb"]


def make_settings(backend: str, tmp_path) -> Settings:
    if backend == "memory":
        return Settings.build(mongo_uri="memory:", home=tmp_path, environ={})
    if backend == "embedded":
        return Settings.build(mongo_uri=f"embedded:{tmp_path / 'store.sqlite'}", home=tmp_path, environ={})
    if not MONGO_URI:
        pytest.skip("real MongoDB not configured: set CUSTSCORE_TEST_MONGO_URI=mongodb://… to run these")
    return Settings.build(mongo_uri=MONGO_URI, home=tmp_path, db_name=f"cstest_{uuid.uuid4().hex[:10]}", environ={})


def adapter_on_mongomock(monkeypatch):
    """MongoStore's pymongo code driven against mongomock: checks our adapter, not MongoDB itself."""
    import mongomock

    from custscore.store.mongo import MongoStore
    from custscore.store.schema import ensure_schema

    monkeypatch.setattr(mongomock.database.Database, "command", lambda self, cmd, *a, **k: {"ok": 1.0}, raising=False)
    builder = mongomock.collection.BulkOperationBuilder
    for name in ("add_update", "add_replace"):  # pymongo 4.9+ passes sort=, mongomock 4.3 predates it
        original = getattr(builder, name)
        monkeypatch.setattr(builder, name, lambda self, *a, _f=original, sort=None, **k: _f(self, *a, **k))
    st = MongoStore("mongodb://adapter-test", "custscore", client=mongomock.MongoClient(tz_aware=False))
    ensure_schema(st)
    return st


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path, monkeypatch):
    """A fresh store on each backend (mongodb skipped, visibly, unless configured)."""
    if request.param == "pymongo-adapter":
        yield adapter_on_mongomock(monkeypatch)
        return
    settings = make_settings(request.param, tmp_path)
    st = open_store(settings)
    yield st
    if st.backend == "mongodb":
        st.client.drop_database(settings.db_name)
    st.close()


@pytest.fixture
def settings(tmp_path):
    """Settings for a fresh embedded store under tmp_path."""
    return Settings.build(home=tmp_path, environ={})
