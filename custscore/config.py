"""Settings: one typed object built once (flags > environment > defaults) and passed down."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from custscore.clock import Clock, as_of_from_env, clock_for
from custscore.errors import ConfigError

ENV_URI = "CUSTSCORE_MONGO_URI"
ENV_HOME = "CUSTSCORE_HOME"
ENV_DB = "CUSTSCORE_DB"
DEFAULT_HOME = ".custscore"
DEFAULT_DB = "custscore"
URI_SCHEMES = ("mongodb://", "mongodb+srv://", "embedded:", "memory:")


@dataclass(frozen=True)
class Settings:
    """Where custscore keeps its data.

    Parameters
    ----------
    home : Path
        Directory for the embedded store, the SQLite mirror, models and reports.
    mongo_uri : str
        ``mongodb://…``, ``mongodb+srv://…``, ``embedded:PATH`` or ``memory:``.
    db_name : str
        Database name on MongoDB (ignored by the embedded store).
    as_of : datetime, optional
        Pinned as-of time for scoring (``CUSTSCORE_AS_OF``); None means the wall clock.
    """

    home: Path
    mongo_uri: str
    db_name: str = DEFAULT_DB
    as_of: dt.datetime | None = None

    @classmethod
    def build(
        cls,
        mongo_uri: str | None = None,
        home: str | Path | None = None,
        db_name: str | None = None,
        environ: dict | None = None,
    ) -> Settings:
        """Resolve flags over environment over defaults and check the result."""
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get(ENV_HOME) or DEFAULT_HOME).expanduser()
        uri = mongo_uri or env.get(ENV_URI) or f"embedded:{home_path / 'store.sqlite'}"
        if not uri.startswith(URI_SCHEMES):
            raise ConfigError(
                f"mongo URI {uri!r} is not understood; use mongodb://HOST:PORT, "
                "embedded:PATH or memory: (flag --mongo-uri or CUSTSCORE_MONGO_URI)"
            )
        name = db_name or env.get(ENV_DB) or DEFAULT_DB
        if not name or any(c in name for c in '/\\. "$'):
            raise ConfigError(
                f"database name {name!r} is not allowed; use letters, digits, '_' or '-' "
                "(flag --db or CUSTSCORE_DB)"
            )
        return cls(home=home_path, mongo_uri=uri, db_name=name, as_of=as_of_from_env(env))

    def clock(self, as_of: str | dt.date | None = None) -> Clock:
        """The as-of clock: ``as_of`` (the ``--as-of`` flag) over ``CUSTSCORE_AS_OF`` over the wall clock."""
        return clock_for(as_of, self.as_of)

    @property
    def backend(self) -> str:
        """``mongodb``, ``embedded`` or ``memory``."""
        if self.mongo_uri.startswith("mongodb"):
            return "mongodb"
        return self.mongo_uri.split(":", 1)[0]
