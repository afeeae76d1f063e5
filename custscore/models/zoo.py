"""The model zoo: one named-step Pipeline per model family, seeded and sized for a 2-core laptop.

Every candidate is ``prep`` -> optional ``smote`` -> ``model``; ``prep`` is the ColumnTransformer from
:func:`make_preprocessor`. SMOTE lives in an imbalanced-learn Pipeline so it resamples training folds only.
"""

from __future__ import annotations

import logging

import numpy as np
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from xgboost import XGBClassifier, XGBRegressor

from custscore.errors import ConfigError
from custscore.models import customer_base_family
from custscore.models.keras_mlp import KerasMLPClassifier, KerasMLPRegressor
from custscore.models.log_transform import ClippedLog1p

logger = logging.getLogger(__name__)

KINDS = ("regression", "classification")
BALANCES = (None, "weights", "smote")
FAMILIES = {
    "regression": ("linear", "tree", "forest", "gboost", "xgboost", "mlp", "stacking"),
    "classification": ("linear", "tree", "forest", "gboost", "xgboost", "mlp", "voting", "stacking"),
}

FAMILY_NOTES = {
    "linear": "fast and transparent (one weight per feature); misses interactions and thresholds",
    "tree": "printable rules a person can follow; high variance, coarse predictions",
    "forest": "robust with little tuning; larger artifact, slower to predict than one tree",
    "gboost": "strong on tabular data and quick (histogram boosting); needs care against overfitting",
    "xgboost": "strong on tabular data, many knobs, fast hist trees; extra dependency in production",
    "mlp": "learns smooth interactions; needs scaling and seeds, slowest to fit, hardest to explain",
    "voting": "averages diverse models' probabilities for stability; costs the sum of its members",
    "stacking": "learns how to weigh its members; best accuracy at the highest fit cost, least transparent",
    "bgnbd": customer_base_family.NOTE,
}


def make_preprocessor(numeric, categorical, log_cols=(), customer_base_horizon=None):
    """Build the shared ``prep`` step.

    Parameters
    ----------
    numeric, categorical : sequence of str
        Numeric (float, NaN for missing) and categorical (object strings) feature columns.
    log_cols : sequence of str
        Numeric columns that get ``log1p`` (after clipping at 0) before scaling.
    customer_base_horizon : float, optional
        Churn horizon in days: adds the ``custbase`` branch (BG/NBD and Gamma-Gamma quantities fitted on the
        training rows; :mod:`custscore.models.customer_base_family`) when the numeric features allow it.

    Returns
    -------
    ColumnTransformer
        Transformers ``num`` (median impute, optional log1p, StandardScaler) and ``cat`` (constant 'missing'
        impute, dense one-hot that ignores unknown categories); output names are the plain feature names.
    """
    numeric, categorical = list(numeric), list(categorical)
    unknown = [c for c in log_cols if c not in numeric]
    if unknown:
        raise ConfigError(f"log_cols: {unknown} are not numeric features; pass only names from the numeric list")
    # keep_empty_features keeps column positions stable, which the log step's indices rely on.
    num_steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if log_cols:
        idx = [numeric.index(c) for c in log_cols]
        num_steps.append(("log", ClippedLog1p(columns=idx)))
    num_steps.append(("scale", StandardScaler()))
    cat = Pipeline([
        ("impute", SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)),
        # A NaN imputer leaves None alone (None == None), and the feature frame may hold either.
        ("impute_none", SimpleImputer(missing_values=None, strategy="constant", fill_value="missing",
                                      keep_empty_features=True)),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    branches = [("num", Pipeline(num_steps), numeric), ("cat", cat, categorical)]
    if customer_base_horizon and customer_base_family.available(numeric):
        branches.append(("custbase", customer_base_family.custbase_branch(customer_base_horizon),
                         list(customer_base_family.INPUTS)))
    return ColumnTransformer(branches, verbose_feature_names_out=False)


def positive_weight(y):
    """Negatives per positive in ``y`` (XGBoost's ``scale_pos_weight``), 1.0 when undefined."""
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) != 2:
        return 1.0
    pos = np.sum(y == classes[1])
    return float((len(y) - pos) / pos) if pos else 1.0


def _regressors(seed):
    # HistGradientBoosting, not GradientBoosting: on ~10k rows it is 10-50x faster, handles NaN natively and
    # supports class_weight; the accuracy is the same family of model (binned gradient-boosted trees).
    linear = Ridge(alpha=1.0)
    tree = DecisionTreeRegressor(max_depth=6, min_samples_leaf=30, random_state=seed)
    # sqrt features per split keeps a 100-tree forest near a second on ~10k rows; 0.5 tripled the cost for ~no gain.
    forest = RandomForestRegressor(n_estimators=80, max_depth=12, min_samples_leaf=5, max_features="sqrt",
                                   n_jobs=2, random_state=seed)
    gboost = HistGradientBoostingRegressor(learning_rate=0.1, max_iter=300, max_leaf_nodes=31, min_samples_leaf=20,
                                           early_stopping=True, validation_fraction=0.1, n_iter_no_change=15,
                                           random_state=seed)
    xgb = XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, subsample=0.8, colsample_bytree=0.8,
                       tree_method="hist", n_jobs=2, random_state=seed)
    # Larger batches and a higher learning rate: per-epoch overhead dominates a network this small on 2 cores.
    mlp = KerasMLPRegressor(hidden=(64, 32), dropout=0.1, learning_rate=3e-3, epochs=50, batch_size=512, patience=4,
                            random_state=seed)
    # Stacking refits every member cv+1 times per fit, so members are the cheap, diverse ones (no forest, no HGB).
    stacking = StackingRegressor(
        estimators=[("linear", Ridge(alpha=1.0)),
                    ("tree", DecisionTreeRegressor(max_depth=6, min_samples_leaf=30, random_state=seed)),
                    ("xgboost", XGBRegressor(n_estimators=150, max_depth=4, learning_rate=0.1, subsample=0.8,
                                             colsample_bytree=0.8, tree_method="hist", n_jobs=2,
                                             random_state=seed))],
        final_estimator=Ridge(alpha=1.0), cv=3, n_jobs=1,
    )
    return {"linear": linear, "tree": tree, "forest": forest, "gboost": gboost, "xgboost": xgb, "mlp": mlp,
            "stacking": stacking}


def _classifiers(seed, weighted, pos_weight):
    cw = "balanced" if weighted else None
    spw = pos_weight if weighted else 1.0

    def logit():
        return LogisticRegression(C=1.0, max_iter=2000, class_weight=cw)

    def forest(n):
        return RandomForestClassifier(n_estimators=n, max_depth=12, min_samples_leaf=5, max_features="sqrt",
                                      class_weight=cw, n_jobs=2, random_state=seed)

    def hgb(n, early):
        return HistGradientBoostingClassifier(learning_rate=0.1, max_iter=n, max_leaf_nodes=31, min_samples_leaf=20,
                                              early_stopping=early, validation_fraction=0.1, n_iter_no_change=15,
                                              class_weight=cw, random_state=seed)

    def xgb(n, lr=0.05):
        return XGBClassifier(n_estimators=n, max_depth=4, learning_rate=lr, subsample=0.8, colsample_bytree=0.8,
                             scale_pos_weight=spw, tree_method="hist", eval_metric="logloss", n_jobs=2,
                             random_state=seed)

    return {
        "linear": logit(),
        "tree": DecisionTreeClassifier(max_depth=6, min_samples_leaf=30, class_weight=cw, random_state=seed),
        "forest": forest(80),
        "gboost": hgb(300, True),
        "xgboost": xgb(300),
        "mlp": KerasMLPClassifier(hidden=(64, 32), dropout=0.1, learning_rate=3e-3, epochs=50, batch_size=512,
                                  patience=4, class_weight=cw, random_state=seed),
        # No HGB member: single-threaded (see evaluate.openmp_single_thread) it doubled the ensemble's fit time.
        "voting": VotingClassifier([("linear", logit()), ("forest", forest(60)), ("xgboost", xgb(150, 0.1))],
                                   voting="soft", n_jobs=1),
        "stacking": StackingClassifier([("linear", logit()), ("tree", DecisionTreeClassifier(
                                            max_depth=6, min_samples_leaf=30, class_weight=cw, random_state=seed)),
                                        ("xgboost", xgb(150, 0.1))],
                                       final_estimator=LogisticRegression(max_iter=2000, class_weight=cw),
                                       stack_method="predict_proba", cv=3, n_jobs=1),
    }


def make_candidates(kind, numeric, categorical, log_cols=(), seed=0, balance=None, families=None, y=None,
                    customer_base_horizon=None):
    """Build the unfitted candidate pipelines for one task.

    Parameters
    ----------
    kind : {"regression", "classification"}
    numeric, categorical, log_cols : sequence of str
        Passed to :func:`make_preprocessor`.
    seed : int
        Seeds every estimator (and SMOTE).
    balance : {None, "weights", "smote"}
        Classification only. ``"weights"``: class_weight='balanced' (XGBoost: scale_pos_weight from ``y``);
        ``"smote"``: an imbalanced-learn Pipeline with a ``smote`` step before ``model``.
    families : sequence of str, optional
        Subset of family names to build (default: all for the kind).
    y : array-like, optional
        Training labels; used only for XGBoost's ``scale_pos_weight`` when ``balance="weights"``.
    customer_base_horizon : float, optional
        Churn only (labels = no purchase within this many days): every family gets the BG/NBD features, and the
        ``bgnbd`` family itself joins the candidates (:mod:`custscore.models.customer_base_family`).

    Returns
    -------
    dict[str, Pipeline]
        Family name -> Pipeline with steps ``prep`` [, ``smote``], ``model``.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind: '{kind}' is not a supervised task kind; use one of {list(KINDS)}")
    if balance not in BALANCES:
        raise ConfigError(f"balance: '{balance}' is unknown; use None, 'weights' or 'smote'")
    if balance and kind != "classification":
        raise ConfigError(f"balance: '{balance}' applies to classification only; drop it for {kind}")
    with_bgnbd = bool(customer_base_horizon) and kind == "classification" and customer_base_family.available(numeric)
    names = list(families) if families is not None else list(FAMILIES[kind])
    if customer_base_family.FAMILY in names and not with_bgnbd:
        # only a churn task (with its horizon and the RFM inputs) has a BG/NBD family
        names.remove(customer_base_family.FAMILY)
    elif with_bgnbd and families is None:
        names.append(customer_base_family.FAMILY)
    unknown = [n for n in names if n not in FAMILIES[kind] and not (with_bgnbd and n == customer_base_family.FAMILY)]
    if unknown:
        raise ConfigError(f"families: {unknown} unknown for {kind}; choose from {list(FAMILIES[kind])}")
    if kind == "regression":
        models = _regressors(seed)
    else:
        pos_weight = 1.0
        if balance == "weights":
            if y is None:
                logger.warning("balance='weights' without y: XGBoost keeps scale_pos_weight=1")
            else:
                pos_weight = positive_weight(y)
        models = _classifiers(seed, balance == "weights", pos_weight)
    out = {}
    for name in names:
        if name == customer_base_family.FAMILY:
            out[name] = customer_base_family.family_pipeline(customer_base_horizon)
            continue
        prep = make_preprocessor(numeric, categorical, log_cols, customer_base_horizon)
        if balance == "smote":
            out[name] = ImbPipeline([("prep", prep), ("smote", SMOTE(random_state=seed)), ("model", models[name])])
        else:
            out[name] = Pipeline([("prep", prep), ("model", models[name])])
    return out


def with_step(pipeline, name, step):
    """Return a copy of ``pipeline`` with ``step`` inserted right after ``prep`` (e.g. a ``select`` step)."""
    steps = list(clone(pipeline).steps)
    pos = [n for n, _ in steps].index("prep") + 1
    steps.insert(pos, (name, step))
    return type(pipeline)(steps)
