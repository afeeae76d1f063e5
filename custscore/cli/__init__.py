"""The custscore command line: parse options, call one library function, render with rich.

``common`` holds the app, global options and error handling; each other module
registers one group of commands on import.
"""

from custscore.cli import (  # noqa: F401 - register their commands
    backtest,
    data,
    demo,
    forecast,
    leaderboards,
    modelling,
    recommend,
    scoring,
    serving,
    sql,
    stats,
    usage,
)
from custscore.cli.common import app

__all__ = ["app"]
