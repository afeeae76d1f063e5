"""Calibrated churn probabilities: a probability written into the database must mean what it says.

Class weights and SMOTE help a model rank the minority class, and inflate its probabilities while doing it (on a
real log the weighted winner's test Brier was 0.156 against 0.121 for predicting the base rate). So every churn
candidate is recalibrated on the validation split, after it was fitted on the training split:

- isotonic regression on the predicted probability, or Platt's sigmoid (a logistic regression on its log-odds);
- the method is chosen by Brier score in 5-fold cross-validation *within* the validation split (fitting and scoring
  a calibrator on the same rows would always prefer isotonic, which can fit them exactly), then the chosen one is
  refitted on the whole validation split; when neither beats the uncalibrated probabilities on those held-out
  folds (a validation split of a few dozen rows, say), the map is the identity (``"none"``) and says so;
- the test split is never used to fit or choose anything; it reports Brier and expected calibration error (ECE)
  before and after;
- the decision threshold is then chosen again on the calibrated scale.

Why not ``CalibratedClassifierCV(FrozenEstimator(pipeline))``: the registry stores a pipeline in the safest format
its final step allows (XGBoost's UBJ, ``.keras``, skops); wrapped in a calibrator every model would have to become a
pickle. So the registry keeps the fitted pipeline as it is and the calibration map as a few numbers in the manifest
(``extra.calibration``, see :meth:`Calibrator.to_dict`); :func:`wrap` puts them back together at load time, and the
result predicts calibrated probabilities. Both methods are monotone, so ranking (ROC-AUC) barely moves (isotonic
can tie neighbours). SHAP explanations are computed on the base pipeline: they explain the uncalibrated model's
output (its log-odds or probability, see ``Explainer.units``), whose order the calibrated probability keeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from custscore.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("isotonic", "sigmoid")
IDENTITY = "none"  # chosen only when neither method beats the raw probabilities in cross-validation
_EPS = 1e-6


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class Calibrator:
    """A monotone map from a model's probability to a calibrated one (sklearn conventions).

    Parameters
    ----------
    method : {"isotonic", "sigmoid"}
        Isotonic regression (clipped outside the fitted range) or Platt scaling on the log-odds.
    """

    def __init__(self, method: str = "isotonic"):
        self.method = method

    def fit(self, proba, y) -> Calibrator:
        """Learn the map from uncalibrated positive-class probabilities ``proba`` to outcomes ``y`` (0/1)."""
        if self.method == IDENTITY:
            return self
        if self.method not in METHODS:
            raise ConfigError(f"calibration method {self.method!r} is unknown; use one of {', '.join(METHODS)}")
        p, y = np.asarray(proba, dtype=float), np.asarray(y).astype(int)
        if self.method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
            self.x_, self.y_ = np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y)
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def transform(self, proba) -> np.ndarray:
        """Calibrated probabilities for uncalibrated ones."""
        p = np.asarray(proba, dtype=float)
        if self.method == IDENTITY:
            return p
        if self.method == "isotonic":
            return np.interp(p, self.x_, self.y_)
        return 1.0 / (1.0 + np.exp(-(self.a_ * _logit(p) + self.b_)))

    def to_dict(self) -> dict:
        """The fitted map as plain JSON numbers (stored in the model manifest)."""
        if self.method == IDENTITY:
            return {"method": IDENTITY}
        if self.method == "isotonic":
            return {"method": "isotonic", "x": self.x_.tolist(), "y": self.y_.tolist()}
        return {"method": "sigmoid", "a": self.a_, "b": self.b_}

    @classmethod
    def from_dict(cls, state: dict) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict`."""
        cal = cls(state["method"])
        if cal.method == "isotonic":
            cal.x_, cal.y_ = np.asarray(state["x"], float), np.asarray(state["y"], float)
        elif cal.method == "sigmoid":
            cal.a_, cal.b_ = float(state["a"]), float(state["b"])
        elif cal.method == IDENTITY:
            pass
        else:
            raise ConfigError(f"calibration method {cal.method!r} in the manifest is unknown; retrain the model")
        return cal


class CalibratedPipeline:
    """A fitted pipeline whose ``predict_proba`` is calibrated; the pipeline's steps stay reachable for SHAP.

    ``steps`` and ``named_steps`` are the base pipeline's, so the explainer explains the base model (see the module
    docstring); ``base`` is what the registry saves.
    """

    def __init__(self, base, calibrator: Calibrator):
        self.base, self.calibrator = base, calibrator

    @property
    def steps(self):
        return self.base.steps

    @property
    def named_steps(self):
        return self.base.named_steps

    @property
    def classes_(self):
        return self.base.classes_

    @property
    def feature_names_in_(self):
        return self.base.feature_names_in_

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated class probabilities, shape (n, 2)."""
        p = self.calibrator.transform(self.base.predict_proba(X)[:, 1])
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """The class with the larger calibrated probability."""
        return np.asarray(self.classes_)[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def base_pipeline(pipeline):
    """The uncalibrated pipeline inside a :class:`CalibratedPipeline` (any other pipeline as it is)."""
    return pipeline.base if isinstance(pipeline, CalibratedPipeline) else pipeline


def wrap(pipeline, state: dict | None):
    """``pipeline`` calibrated by a manifest's ``extra.calibration`` (unchanged when there is none)."""
    return CalibratedPipeline(pipeline, Calibrator.from_dict(state)) if state else pipeline


def expected_calibration_error(y, proba, bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between observed rate and mean prediction over equal-width bins."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(idx):
        m = idx == b
        total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / max(len(y), 1))


@dataclass
class Choice:
    """The calibrator chosen on validation data and the cross-validated Brier of each method."""

    calibrator: Calibrator
    cv_brier: dict
    uncalibrated_brier: float

    @property
    def summary(self) -> str:
        scores = ", ".join(f"{m} {v:.4f}" for m, v in self.cv_brier.items())
        name = "left uncalibrated, neither method helped" if self.calibrator.method == IDENTITY else \
            self.calibrator.method
        return (f"{name} (validation Brier in 5-fold CV: {scores}; "
                f"uncalibrated {self.uncalibrated_brier:.4f})")


def choose(proba_val, y_val, folds: int = 5, seed: int = 0) -> Choice:
    """Pick isotonic or sigmoid by cross-validated Brier on validation data and fit it on all of it.

    Parameters
    ----------
    proba_val, y_val : array-like
        The fitted model's positive-class probabilities on the validation split, and the labels.
    folds, seed : int
        Cross-validation within the validation split (fewer folds when a class is rarer than ``folds``).

    Returns
    -------
    Choice
    """
    p, y = np.asarray(proba_val, dtype=float), np.asarray(y_val).astype(int)
    k = int(min(folds, np.bincount(y, minlength=2).min()))
    cv_brier = {}
    for method in METHODS:
        if k < 2:
            cv_brier[method] = float("nan")
            continue
        out = np.empty(len(y))
        for fit_idx, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y):
            out[held] = Calibrator(method).fit(p[fit_idx], y[fit_idx]).transform(p[held])
        cv_brier[method] = float(brier_score_loss(y, out))
    raw = float(brier_score_loss(y, p))
    finite = {m: v for m, v in cv_brier.items() if np.isfinite(v)}
    method = min(finite, key=finite.get) if finite else IDENTITY
    if method != IDENTITY and finite[method] >= raw:
        method = IDENTITY
    return Choice(Calibrator(method).fit(p, y), cv_brier, raw)


def before_after(y, raw, calibrated) -> dict:
    """Brier and ECE of the same rows before and after calibration."""
    return {"brier_raw": float(brier_score_loss(y, raw)), "brier": float(brier_score_loss(y, calibrated)),
            "ece_raw": expected_calibration_error(y, raw), "ece": expected_calibration_error(y, calibrated)}


def reliability_figure(y, curves: dict[str, np.ndarray], path: Path, title: str = "reliability on the test split",
                       bins: int = 10) -> Path:
    """Save a reliability diagram (observed rate against mean prediction per bin) for one or more predictions.

    Parameters
    ----------
    y : array-like of {0, 1}
    curves : dict
        Label -> probabilities for the same rows (e.g. {"before calibration": p_raw, "after": p_cal}).
    path : Path
        PNG file to write (its folder is created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for label, proba in curves.items():
        p = np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
        idx = np.minimum((p * bins).astype(int), bins - 1)
        frame = pd.DataFrame({"b": idx, "p": p, "y": y}).groupby("b").agg(p=("p", "mean"), y=("y", "mean"))
        ece = expected_calibration_error(y, p, bins)
        brier = brier_score_loss(y.astype(int), p)
        ax.plot(frame["p"], frame["y"], marker="o", label=f"{label} (Brier {brier:.3f}, ECE {ece:.3f})")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibrate_results(results, X_val, y_val, X_test, y_test, threshold_rule="f1", min_precision=None, seed=0):
    """Calibrate every fitted churn candidate on validation data, in place, and measure it on the test split.

    Each ``CandidateResult`` gets a :class:`CalibratedPipeline` and a threshold chosen again on the calibrated
    scale (its ``val_metrics`` stay those of the uncalibrated model, which picked the winner).

    Returns
    -------
    dict
        Candidate name -> {"method", "cv_brier", "brier_raw", "brier", "ece_raw", "ece"} (test split).
    """
    from custscore.models.evaluate import choose_threshold

    out = {}
    for r in results:
        base = base_pipeline(r.pipeline)
        choice = choose(base.predict_proba(X_val)[:, 1], y_val, seed=seed)
        r.pipeline = CalibratedPipeline(base, choice.calibrator)
        r.threshold, r.notes = choose_threshold(y_val, r.pipeline.predict_proba(X_val)[:, 1], rule=threshold_rule,
                                                min_precision=min_precision)
        r.notes += " (calibrated scale)"
        raw = base.predict_proba(X_test)[:, 1]
        out[r.name] = {"method": choice.calibrator.method, "cv_brier": choice.cv_brier,
                       **before_after(y_test, raw, choice.calibrator.transform(raw))}
        log.info("%s: calibrated with %s", r.name, choice.summary)
    return out


def leaderboard_columns(board: pd.DataFrame, measured: dict) -> pd.DataFrame:
    """The leaderboard with test Brier and ECE before (``*_raw``) and after calibration, and the method."""
    board = board.copy()
    for col, key in (("test_brier_raw", "brier_raw"), ("test_ece_raw", "ece_raw"), ("test_ece", "ece"),
                     ("calibration", "method")):
        board[col] = [measured.get(m, {}).get(key) for m in board["model"]]
    return board
