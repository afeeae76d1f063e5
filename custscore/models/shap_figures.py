"""SHAP figures of an explanation: the global importance bar and the beeswarm, saved as PNGs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from custscore.models.explain import Explanation, global_importance

log = logging.getLogger(__name__)


def save_shap_figures(explanation: Explanation, X_raw: pd.DataFrame, out_dir, prefix: str, max_rows: int = 2000,
                      seed: int = 0) -> list[Path]:
    """Write ``{prefix}_shap_importance.png`` (bar of mean |SHAP|) and ``{prefix}_shap_beeswarm.png``.

    Parameters
    ----------
    explanation : Explanation
        Contributions for ``X_raw``.
    X_raw : pandas.DataFrame
        The explained rows; categoricals are coloured by their category code.
    out_dir : path-like
        Created if missing.
    prefix : str
        File name prefix, e.g. the task name.
    max_rows, seed : int
        At most ``max_rows`` rows (a seeded sample) go into the beeswarm.

    Returns
    -------
    list of pathlib.Path
        The two PNG files.
    """
    import shap
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix}_shap_importance.png", out / f"{prefix}_shap_beeswarm.png"]
    top = global_importance(explanation).head(20).iloc[::-1]
    # Figures live on their own Agg canvases, never in pyplot, so nothing stays open after saving
    fig = Figure(figsize=(8, 0.35 * len(top) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh(list(top.index), top.to_numpy(), color="#1f77b4")
    ax.set_xlabel(f"mean |SHAP value| ({explanation.units})")
    ax.set_title(f"{prefix}: global feature importance")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)

    n = len(explanation.values)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max_rows), replace=False))
    frame = X_raw[explanation.feature_names].iloc[idx]
    data = np.column_stack([frame[c].to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(frame[c])
                            else _codes(frame[c]) for c in frame.columns])
    base = np.broadcast_to(np.asarray(explanation.base_value, dtype=float), (n,))[idx]
    sv = shap.Explanation(explanation.values[idx], base_values=base, data=data,
                          feature_names=list(explanation.feature_names))
    fig = Figure(figsize=(9, 0.4 * min(20, data.shape[1]) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shap.plots.beeswarm(sv, max_display=20, ax=ax, show=False, plot_size=None)
    ax.set_xlabel(f"SHAP value ({explanation.units})")
    ax.set_title(f"{prefix}: contributions per customer")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    log.info("SHAP figures written to %s", out)
    return paths


def _codes(col: pd.Series) -> np.ndarray:
    """Category codes as floats (NaN for missing), for beeswarm colouring."""
    codes = pd.Categorical(col).codes.astype(float)
    codes[codes < 0] = np.nan
    return codes
