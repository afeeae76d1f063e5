"""Shared fixtures: a fresh isolated store per test, on every backend."""

from __future__ import annotations

import os
import uuid

import pytest

from custscore.config import Settings
from custscore.store import open_store

MONGO_URI = os.environ.get("CUSTSCORE_TEST_MONGO_URI")
BACKENDS = ["memory", "embedded", "mongodb"]


def make_settings(backend: str, tmp_path) -> Settings:
    if backend == "memory":
        return Settings.build(mongo_uri="memory:", home=tmp_path, environ={})
    if backend == "embedded":
        return Settings.build(mongo_uri=f"embedded:{tmp_path / 'store.sqlite'}", home=tmp_path, environ={})
    if not MONGO_URI:
        pytest.skip("real MongoDB not configured: set CUSTSCORE_TEST_MONGO_URI=mongodb://… to run these")
    return Settings.build(mongo_uri=MONGO_URI, home=tmp_path, db_name=f"cstest_{uuid.uuid4().hex[:10]}", environ={})


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A fresh store on each backend (mongodb skipped, visibly, unless configured)."""
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
