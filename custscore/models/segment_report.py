"""Reading a fitted segmentation: printable rules, the elbow/silhouette figure, agreement with known groups."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score
from sklearn.tree import export_text
from sklearn.utils.validation import check_is_fitted

from custscore.errors import InputError
from custscore.models.segment import SegmentModel


def rules_text(model: SegmentModel, decimals: int = 1) -> str:
    """Printable if/else rules of the assignment tree, in real units, ending in segment names.

    Parameters
    ----------
    model : SegmentModel
        A fitted model.
    decimals : int
        Decimals of the thresholds.

    Returns
    -------
    str
        Output of :func:`sklearn.tree.export_text` with feature and segment names.
    """
    check_is_fitted(model, "tree_")
    tree = model.tree_.named_steps["model"]
    feature_names = [str(n) for n in model.tree_.named_steps["prep"].get_feature_names_out()]
    class_names = [model.names_[int(c)] for c in tree.classes_]
    return export_text(tree, feature_names=feature_names, class_names=class_names, decimals=decimals)


def elbow_silhouette_figure(model: SegmentModel, path: str | Path) -> Path:
    """Save a PNG with the elbow (inertia) and silhouette curves over k, the chosen k marked.

    Parameters
    ----------
    model : SegmentModel
        A fitted model.
    path : str or Path
        Where to write the PNG (parent folders are created).

    Returns
    -------
    Path
        The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_is_fitted(model, "k_table_")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = model.k_table_
    # A bare Figure on the Agg canvas: no pyplot global state, nothing left open.
    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(t["k"], t["inertia"], "o-")
    ax1.set(title="Elbow: inertia", xlabel="k (segments)", ylabel="within-cluster sum of squares")
    ax2.plot(t["k"], t["silhouette"], "o-", color="tab:green")
    ax2.set(title="Silhouette (higher is better)", xlabel="k (segments)", ylabel="silhouette")
    for ax in (ax1, ax2):
        ax.axvline(model.k_, color="tab:red", linestyle="--", label=f"chosen k = {model.k_}")
        ax.set_xticks(list(t["k"]))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    fig.clear()
    return path


def persona_ari(model: SegmentModel, X: pd.DataFrame, personas) -> float:
    """Adjusted Rand index of the tree's segments against true personas (1.0 = the oracle).

    Parameters
    ----------
    model : SegmentModel
        A fitted model.
    X : DataFrame
        Feature frame.
    personas : Series or sequence
        True persona per row; a Series is aligned to ``X.index``.

    Returns
    -------
    float
        ``adjusted_rand_score(personas, model.predict(X))``.
    """
    truth = personas.reindex(X.index) if isinstance(personas, pd.Series) else pd.Series(list(personas), index=X.index)
    if len(truth) != len(X) or truth.isna().any():
        raise InputError(f"personas must give one label per row of X ({len(X)} rows, "
                         f"{int(truth.isna().sum())} missing); pass a Series indexed like X")
    return float(adjusted_rand_score(truth.to_numpy(), model.predict(X)))
