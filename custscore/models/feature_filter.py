"""Drop features that carry no information in the training data: entirely missing, or one value for everyone.

A business's own log often has only customer ids, signup dates and purchases, so the profile fields (age, income,
region, ...) are empty and a few derived ones are constant. Fed to the model zoo they make every imputer, scaler and
F-test warn once per fit (about 145 lines per ``train``) and add nothing. :func:`drop_uninformative` removes them
from a task's data before anything is fitted and says which, and why, in one line.

The decision reads the feature frame only (never the label), so making it on every training row leaks nothing
about the outcome.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

log = logging.getLogger(__name__)


def uninformative(X: pd.DataFrame, columns=None) -> dict[str, str]:
    """Columns of ``X`` with no values, or a single value, among its rows.

    Parameters
    ----------
    X : DataFrame
        Feature frame (numeric columns float with NaN, categorical columns object with None).
    columns : sequence of str, optional
        Columns to check (default: all).

    Returns
    -------
    dict[str, str]
        Column -> ``"empty"`` (no values) or ``"constant"`` (one distinct value, missing ignored), in column order.
    """
    out = {}
    for col in columns if columns is not None else X.columns:
        values = X[col].dropna()
        if values.empty:
            out[col] = "empty"
        elif values.nunique() <= 1:
            out[col] = "constant"
    return out


def summary(dropped: dict[str, str]) -> str:
    """One line naming the dropped columns and why, e.g. "dropped age, income: no values in the training data"."""
    empty = [c for c, why in dropped.items() if why == "empty"]
    constant = [c for c, why in dropped.items() if why == "constant"]
    parts = []
    if empty:
        parts.append(f"{', '.join(empty)}: no values in the training data")
    if constant:
        parts.append(f"{', '.join(constant)}: the same value for every customer")
    return "dropped " + "; ".join(parts) if parts else ""


def drop_uninformative(data):
    """A copy of a task's data without its empty and constant features (:class:`dataset.TaskData`).

    The dropped columns leave ``X``, ``numeric`` and ``categorical``; the one-line reason is logged once and
    appended to ``notes``. Data with nothing to drop comes back unchanged. When every feature would go, the data
    also comes back unchanged: a task with nothing to learn from fails later with its own message.
    """
    dropped = uninformative(data.X, [*data.numeric, *data.categorical])
    if not dropped or len(dropped) == len(data.numeric) + len(data.categorical):
        return data
    line = f"{data.task}: {summary(dropped)}"
    log.info(line)
    keep = [c for c in data.X.columns if c not in dropped]
    return replace(data, X=data.X[keep], numeric=[c for c in data.numeric if c not in dropped],
                   categorical=[c for c in data.categorical if c not in dropped], notes=[*data.notes, summary(dropped)])
