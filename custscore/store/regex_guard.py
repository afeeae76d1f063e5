"""``$regex`` that cannot run away: patterns checked up front, evaluated with a timeout on the embedded store.

Python's ``re`` backtracks without bound: ``^(\\w+\\s?)+!$`` on an ordinary
sentence never returns, and nothing can interrupt it. So every ``$regex`` in a
filter is compiled first (a bad pattern is one clear error), and on the
embedded store it is evaluated by the ``regex`` package, whose ``search`` takes
a ``timeout``: the query's remaining time budget (see ``store/limits.py``).
The engine was chosen over a linear-time one (google-re2) because it keeps
lookarounds and backreferences, which MongoDB's PCRE has and RE2 lacks.
MongoDB evaluates ``$regex`` on the server, under the query's ``maxTimeMS``.
"""

from __future__ import annotations

from typing import Any

import regex
from bson.regex import Regex

from custscore.errors import InputError
from custscore.store import limits

MAX_PATTERN_CHARS = 1000
NO_BUDGET_TIMEOUT_S = limits.DEFAULT_QUERY_TIMEOUT_S  # per evaluation, when the caller set no budget
_OPTIONS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE, "u": 0}


def _flags(options: Any) -> int:
    if not isinstance(options, str):
        raise InputError(f"$options must be text such as \"i\", got {options!r}")
    flags = 0
    for letter in options:
        if letter not in _OPTIONS:
            raise InputError(f"$options {options!r}: unknown option {letter!r}; use i, m, s or x")
        flags |= _OPTIONS[letter]
    return flags


def compile_pattern(pattern: Any, options: Any = "") -> regex.Pattern:
    """The compiled pattern, or an InputError naming the pattern and what is wrong with it."""
    if not isinstance(pattern, str):
        raise InputError(f"$regex must be text, got {type(pattern).__name__}; write e.g. {{\"$regex\": \"^Ann\"}}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InputError(f"$regex is {len(pattern):,} characters long; patterns may have at most {MAX_PATTERN_CHARS:,}")
    try:
        return regex.compile(pattern, _flags(options) | regex.VERSION0)
    except regex.error as exc:
        shown = pattern if len(pattern) <= 40 else pattern[:37] + "..."
        raise InputError(f"$regex {shown!r} is not a valid pattern ({exc}); escape special characters "
                         "such as ( [ + with a backslash") from None


class _TimedPattern:
    """What mongomock calls ``search`` on: the ``regex`` engine under the query's time budget."""

    def __init__(self, compiled: regex.Pattern):
        self._compiled = compiled

    def search(self, text: str) -> Any:
        left = limits.remaining()
        if left is not None and left <= 0:
            raise limits.timeout_error()
        try:
            return self._compiled.search(text, timeout=NO_BUDGET_TIMEOUT_S if left is None else left)
        except TimeoutError:
            raise limits.timeout_error(None if left is not None else NO_BUDGET_TIMEOUT_S) from None


class GuardedRegex(Regex):
    """A ``bson.Regex`` whose compiled form evaluates with a timeout (mongomock compiles it per match)."""

    def __init__(self, pattern: str, flags: int = 0):
        super().__init__(pattern, flags)
        self._timed = _TimedPattern(regex.compile(pattern, flags | regex.VERSION0))

    def try_compile(self) -> Any:
        return self._timed


def guard_filter(spec: Any, evaluate_here: bool = True) -> Any:
    """A copy of ``spec`` with every ``$regex`` checked, and (``evaluate_here``) made timeout-capable.

    Parameters
    ----------
    spec : Any
        A filter (already checked for nesting depth).
    evaluate_here : bool
        True when custscore evaluates the filter itself (the embedded store); False on
        MongoDB, where patterns are only checked and the server evaluates them.

    Returns
    -------
    Any
        The filter to run.

    Raises
    ------
    InputError
        A pattern does not compile, is too long, or has unknown ``$options``.
    """
    if isinstance(spec, list | tuple):
        return [guard_filter(item, evaluate_here) for item in spec]
    if not isinstance(spec, dict):
        return spec
    if "$regex" in spec:
        compiled = compile_pattern(spec["$regex"], spec.get("$options", ""))
        rest = {k: guard_filter(v, evaluate_here) for k, v in spec.items() if k not in ("$regex", "$options")}
        if not evaluate_here:
            return {**{k: v for k, v in spec.items() if k in ("$regex", "$options")}, **rest}
        return {"$regex": GuardedRegex(compiled.pattern, _flags(spec.get("$options", ""))), **rest}
    if "$options" in spec:
        raise InputError("$options needs a $regex beside it, e.g. {\"$regex\": \"^ann\", \"$options\": \"i\"}")
    return {k: guard_filter(v, evaluate_here) for k, v in spec.items()}
