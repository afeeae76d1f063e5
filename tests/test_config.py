"""Configuration order: a flag beats the environment, the environment beats the default."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from custscore.cli import app
from custscore.config import DEFAULT_DB, DEFAULT_HOME, Settings


@pytest.mark.parametrize(
    "field, flag, env_name",
    [("home", "home", "CUSTSCORE_HOME"), ("mongo_uri", "mongo_uri", "CUSTSCORE_MONGO_URI"),
     ("db_name", "db_name", "CUSTSCORE_DB")],
)
def test_flag_beats_environment_beats_default(tmp_path, field, flag, env_name):
    values = {
        "home": (tmp_path / "from-flag", tmp_path / "from-env"),
        "mongo_uri": ("memory:", f"embedded:{tmp_path / 'env.sqlite'}"),
        "db_name": ("from_flag", "from_env"),
    }[field]
    from_flag, from_env = values
    environ = {env_name: str(from_env)}
    assert getattr(Settings.build(**{flag: from_flag}, environ=environ), field) == from_flag
    assert getattr(Settings.build(environ=environ), field) == from_env


def test_defaults_when_neither_flag_nor_environment_says():
    settings = Settings.build(environ={})
    assert settings.home == Path(DEFAULT_HOME)
    assert settings.mongo_uri == f"embedded:{Path(DEFAULT_HOME) / 'store.sqlite'}"
    assert settings.db_name == DEFAULT_DB


def test_the_default_store_follows_the_home_from_either_source(tmp_path):
    assert Settings.build(home=tmp_path, environ={}).mongo_uri == f"embedded:{tmp_path / 'store.sqlite'}"
    assert Settings.build(environ={"CUSTSCORE_HOME": str(tmp_path)}).mongo_uri == f"embedded:{tmp_path / 'store.sqlite'}"


def test_the_command_line_applies_the_same_order(tmp_path, monkeypatch):
    """`--home` over CUSTSCORE_HOME: the status command reports the store under the flag's home."""
    seen = []
    monkeypatch.setattr(Settings, "build", _recording(Settings.build, seen))
    env = {"CUSTSCORE_HOME": str(tmp_path / "env"), "CUSTSCORE_MONGO_URI": "", "CUSTSCORE_DB": "from_env"}
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "flag"), "--db", "from_flag", "status"], env=env)
    assert result.exit_code == 0, result.output
    assert seen[-1].home == tmp_path / "flag" and seen[-1].db_name == "from_flag"
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    assert seen[-1].home == tmp_path / "env" and seen[-1].db_name == "from_env"


def _recording(build, seen):
    def recorded(*args, **kwargs):
        settings = build(*args, **kwargs)
        seen.append(settings)
        return settings

    return recorded
