"""Views of a pipeline's result for people: sorted by a named column, and the cohort triangle as a grid.

``custscore stats`` uses them; they work on the DataFrame :func:`run_pipeline`
returns and never touch the store.
"""

from __future__ import annotations

import pandas as pd

from custscore.errors import InputError
from custscore.store.query import close_fields, parse_sort


def sort_frame(frame: pd.DataFrame, sort: str | None, name: str) -> pd.DataFrame:
    """``frame`` sorted by ``sort`` (``"monetary:-1,customer_id"``), missing values last.

    Parameters
    ----------
    frame : pandas.DataFrame
        A pipeline's result.
    sort : str or None
        Comma-separated ``COLUMN[:1|-1]``; None or empty keeps the pipeline's order.
    name : str
        The pipeline's name, for the error message.

    Returns
    -------
    pandas.DataFrame
        The sorted rows, index renumbered.

    Raises
    ------
    InputError
        A column the result does not have (the message names close matches), or a bad direction.
    """
    order = parse_sort(sort)
    if not order:
        return frame
    columns = [str(c) for c in frame.columns]
    for column, _ in order:
        if column not in columns:
            matches = close_fields(column, columns)
            hint = (f"did you mean {' or '.join(matches)}?" if matches
                    else f"its columns are {', '.join(columns)}")
            raise InputError(f"--sort column {column!r} is not in {name}; {hint}")
    return frame.sort_values([c for c, _ in order], ascending=[d == 1 for _, d in order], kind="stable",
                             na_position="last").reset_index(drop=True)


def cohort_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``cohort_retention`` result as a cohort x month grid: one row per signup month, newest first.

    Columns are ``cohort``, ``cohort_size`` and one column per month since signup (``"0"``, ``"1"``, ...)
    holding the retention share; a month with no purchaser of a cohort inside the event window is 0.0, a month
    after the last stored event (not seen yet) is missing.

    Parameters
    ----------
    frame : pandas.DataFrame
        What ``run_pipeline(store, "cohort_retention")`` returns (tidy: cohort, months_since, cohort_size,
        active_customers, retention).

    Returns
    -------
    pandas.DataFrame
        The grid, newest cohort first: the cohorts whose early months the stored events cover come first
        (a cohort older than the first event has no month 0 to show).
    """
    if frame.empty:
        return pd.DataFrame(columns=["cohort", "cohort_size"])
    grid = frame.pivot(index="cohort", columns="months_since", values="retention").sort_index(ascending=False)
    months = range(int(frame["months_since"].max()) + 1)
    grid = grid.reindex(columns=months)
    # a cohort's months from its first to its last observed one had activity or none (0.0); later ones are unseen
    last_month = frame.groupby("cohort")["months_since"].max()
    first_month = frame.groupby("cohort")["months_since"].min()
    for cohort in grid.index:
        span = [m for m in months if first_month[cohort] <= m <= last_month[cohort]]
        grid.loc[cohort, span] = grid.loc[cohort, span].fillna(0.0)
    grid.columns = [str(m) for m in grid.columns]
    sizes = frame.groupby("cohort")["cohort_size"].first()
    grid.insert(0, "cohort_size", sizes.reindex(grid.index).astype("int64"))
    return grid.reset_index()
