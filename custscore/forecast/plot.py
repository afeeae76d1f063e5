"""A PNG of series: recent history, the forecast and its 80%/95% intervals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from custscore.forecast.series import Panel


def plot_forecasts(history: Panel, forecasts: pd.DataFrame, path: Path, max_series: int = 4) -> Path:
    """Draw up to ``max_series`` series (one panel each) and save the figure to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(forecasts["key"]))[:max_series]
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.6 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        i = history.keys.index(key)
        f = forecasts[forecasts["key"] == key]
        ax.plot(history.periods, history.y[i], color="0.3", lw=1, label="history")
        ax.fill_between(f["period"], f["lo95"], f["hi95"], color="tab:blue", alpha=0.15, label="95%")
        ax.fill_between(f["period"], f["lo80"], f["hi80"], color="tab:blue", alpha=0.3, label="80%")
        ax.plot(f["period"], f["yhat"], color="tab:blue", lw=1.5, label=f"forecast ({f['model'].iloc[0]})")
        ax.set_title(key, fontsize=10)
        ax.set_ylabel("units")
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
