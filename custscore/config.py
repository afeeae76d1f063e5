"""Settings: one typed object built once (flags > environment > defaults) and passed down."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from custscore.clock import ENV_AS_OF, Clock, as_of_from_env, clock_for
from custscore.errors import ConfigError
from custscore.redact import redact

ENV_URI = "CUSTSCORE_MONGO_URI"
ENV_HOME = "CUSTSCORE_HOME"
ENV_DB = "CUSTSCORE_DB"
ENV_CURRENCY = "CUSTSCORE_CURRENCY"
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
    currency : str
        How money reads in reasons (``CUSTSCORE_CURRENCY``): a symbol such as ``$`` or ``€`` goes before the
        amount, a code such as ``USD`` after it; empty (the default) leaves amounts bare.
    """

    home: Path
    mongo_uri: str
    db_name: str = DEFAULT_DB
    as_of: dt.datetime | None = None
    currency: str = ""

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
                f"mongo URI {redact(uri)!r} is not understood; use mongodb://HOST:PORT, "
                "embedded:PATH or memory: (flag --mongo-uri or CUSTSCORE_MONGO_URI)"
            )
        if uri.startswith("mongodb"):
            check_mongo_hosts(uri)
        name = db_name or env.get(ENV_DB) or DEFAULT_DB
        if not name or any(c in name for c in '/\\. "$'):
            raise ConfigError(
                f"database name {name!r} is not allowed; use letters, digits, '_' or '-' "
                "(flag --db or CUSTSCORE_DB)"
            )
        currency = (env.get(ENV_CURRENCY) or "").strip()
        if len(currency) > 8:
            raise ConfigError(f"currency {currency!r} is too long; use a symbol such as $ or a code such as USD "
                              "(CUSTSCORE_CURRENCY)")
        return cls(home=home_path, mongo_uri=uri, db_name=name, as_of=as_of_from_env(env), currency=currency)

    def clock(self, as_of: str | dt.date | None = None) -> Clock:
        """The as-of clock: ``as_of`` (the ``--as-of`` flag) over ``CUSTSCORE_AS_OF`` over the wall clock."""
        return clock_for(as_of, self.as_of)

    def environment(self) -> dict[str, str]:
        """The environment variables that :meth:`build` resolves back to these settings (for a spawned process)."""
        env = {ENV_HOME: str(self.home), ENV_URI: self.mongo_uri, ENV_DB: self.db_name, ENV_CURRENCY: self.currency}
        if self.as_of is not None:
            env[ENV_AS_OF] = self.as_of.isoformat()
        return env

    @property
    def backend(self) -> str:
        """``mongodb``, ``embedded`` or ``memory``."""
        if self.mongo_uri.startswith("mongodb"):
            return "mongodb"
        return self.mongo_uri.split(":", 1)[0]


def check_mongo_hosts(uri: str) -> list[tuple[str, int | None]]:
    """The (host, port) pairs of a ``mongodb://`` URI, one per host of a replica set; a bad port is a ConfigError.

    ``mongodb://admin:pw@h1:1,h2:2/?replicaSet=rs0`` gives ``[("h1", 1), ("h2", 2)]``;
    the password never appears in a message.
    """
    rest = uri.split("://", 1)[1]
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    hosts = authority.rsplit("@", 1)[-1]
    found: list[tuple[str, int | None]] = []
    for item in hosts.split(","):
        host, port = item, None
        if item.startswith("["):  # [::1]:27017
            host, _, tail = item[1:].partition("]")
            text = tail[1:] if tail.startswith(":") else None
        else:
            host, _, text = item.rpartition(":") if ":" in item else (item, "", None)
        if text is not None and text != "":
            if not text.isdigit() or not 1 <= int(text) <= 65535:
                raise ConfigError(f"mongo URI {redact(uri)!r}: port {text!r} of host {host!r} is not a port "
                                  "(use 1-65535, e.g. mongodb://HOST:27017); fix --mongo-uri or CUSTSCORE_MONGO_URI")
            port = int(text)
        if not host and not uri.startswith("mongodb+srv"):
            raise ConfigError(f"mongo URI {redact(uri)!r} names no host; use mongodb://HOST:PORT "
                              "(flag --mongo-uri or CUSTSCORE_MONGO_URI)")
        found.append((host, port))
    return found
