"""The one as-of clock: what "now" means for features, scores and their age.

Every scoring path asks a :class:`Clock` for the time its features describe.
The wall clock is the default; ``--as-of DATE`` (or ``CUSTSCORE_AS_OF``) pins a
:class:`FixedClock` for replays and backtests; tests drive a :class:`FakeClock`
they can advance. Times are naive UTC with millisecond precision, as the store
keeps them. A date without a time means the end of that day, so "as of
2025-06-30" includes the purchases made on the 30th.

Bookkeeping that is about real time (heartbeats, ``scored_at``, load stamps)
uses :func:`now`, the wall clock, whatever the as-of date.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from custscore.errors import ConfigError

ENV_AS_OF = "CUSTSCORE_AS_OF"
DATE_HINT = "use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
_END_OF_DAY = dt.time(23, 59, 59, 999000)


def _stored(value: dt.datetime) -> dt.datetime:
    """Naive UTC, millisecond precision."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def now() -> dt.datetime:
    """The wall clock as naive UTC with millisecond precision (how the store keeps times)."""
    return _stored(dt.datetime.now(dt.UTC))


def parse_date(value: str | dt.date | None, option: str = "date", end_of_day: bool = False) -> dt.datetime | None:
    """A user-given date or date-time as naive UTC; the one parser every command uses.

    Parameters
    ----------
    value : str, date or None
        ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS]`` (an offset such as ``+02:00`` is
        converted to UTC), a ``date``/``datetime``, or None.
    option : str
        The flag or field the value came from, named in the error message.
    end_of_day : bool
        Read a bare date as its last millisecond (as-of dates) instead of midnight.

    Returns
    -------
    datetime or None
        None when ``value`` is None or empty.

    Raises
    ------
    ConfigError
        ``value`` is not a date, e.g. ``--as-of '2025-13-01' is not a date; use YYYY-MM-DD``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return _stored(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, _END_OF_DAY if end_of_day else dt.time())
    text = str(value).strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date; {DATE_HINT}") from None
    if end_of_day and len(text) == 10:
        parsed = dt.datetime.combine(parsed.date(), _END_OF_DAY)
    return _stored(parsed)


class Clock:
    """What "now" is for features and score ages; subclasses say where it comes from."""

    fixed = False

    def now(self) -> dt.datetime:
        """The current as-of time (naive UTC)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for logs and panels, e.g. ``wall clock`` or ``as of 2025-06-30``."""
        return f"as of {self.now():%Y-%m-%d %H:%M}"

    def __call__(self) -> dt.datetime:
        return self.now()


class WallClock(Clock):
    """The real time: the default."""

    def now(self) -> dt.datetime:
        return now()

    def describe(self) -> str:
        return "wall clock"


class FixedClock(Clock):
    """A pinned as-of time (``--as-of``): replays and backtests see the data as it was then."""

    fixed = True

    def __init__(self, as_of: dt.datetime):
        self.as_of = _stored(as_of)

    def now(self) -> dt.datetime:
        return self.as_of

    def describe(self) -> str:
        if self.as_of.time() == _END_OF_DAY:
            return f"as of {self.as_of:%Y-%m-%d}"
        return f"as of {self.as_of:%Y-%m-%d %H:%M}"

    def __repr__(self) -> str:
        return f"FixedClock({self.as_of.isoformat()})"


class FakeClock(Clock):
    """A clock tests move by hand: ``clock.advance(days=120)``."""

    def __init__(self, start: dt.datetime):
        self.current = _stored(start)

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **delta: float) -> dt.datetime:
        """Move forward by a ``timedelta(**delta)`` and return the new time."""
        step = dt.timedelta(**delta)
        if step < dt.timedelta(0):
            raise ValueError(f"a clock only moves forward, got {step}")
        self.current = _stored(self.current + step)
        return self.current


def as_of_from_env(environ: Mapping[str, str] | None = None) -> dt.datetime | None:
    """``CUSTSCORE_AS_OF`` parsed (end of day for a bare date), or None when unset."""
    env = os.environ if environ is None else environ
    return parse_date(env.get(ENV_AS_OF), ENV_AS_OF, end_of_day=True)


def clock_for(as_of: str | dt.date | None = None, default: dt.datetime | None = None) -> Clock:
    """The clock for a command: ``as_of`` (a flag) over ``default`` (e.g. ``Settings.as_of``) over the wall clock.

    Parameters
    ----------
    as_of : str, date or None
        The ``--as-of`` value as given.
    default : datetime, optional
        What the environment or configuration pinned.

    Returns
    -------
    Clock
        A :class:`FixedClock` when a date is given, else a :class:`WallClock`.

    Raises
    ------
    ConfigError
        ``as_of`` is not a date.
    """
    pinned = parse_date(as_of, "--as-of", end_of_day=True) or default
    return FixedClock(pinned) if pinned is not None else WallClock()


def parse_age(value: str | float | int | dt.timedelta | None, option: str = "--max-age") -> dt.timedelta:
    """A maximum age such as ``1d``, ``12h``, ``30m`` or a bare number of days; ``0`` means off.

    Raises
    ------
    ConfigError
        Not a duration, or negative.
    """
    if value is None:
        return dt.timedelta(0)
    if isinstance(value, dt.timedelta):
        age = value
    elif isinstance(value, int | float):
        age = dt.timedelta(days=float(value))
    else:
        text = str(value).strip().lower()
        units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
        unit = units.get(text[-1:]) if text else None
        number = text[:-1] if unit else text
        try:
            age = dt.timedelta(**{unit or "days": float(number)})
        except (ValueError, OverflowError):
            raise ConfigError(f"{option} {value!r} is not a duration; use e.g. 1d, 12h, 30m or 0 to turn it off") \
                from None
    if age < dt.timedelta(0):
        raise ConfigError(f"{option} {value!r} is negative; use e.g. 1d, or 0 to turn it off")
    return age
