"""Keras multi-layer perceptrons behind the scikit-learn estimator interface.

The wrappers store constructor arguments only, import Keras lazily inside ``fit`` (importing this module stays
cheap) and keep the fitted network in ``model_``. Pickling goes through the ``.keras`` format bytes so a pickled
wrapper round-trips without pickling TensorFlow objects.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted, validate_data

# Set before TensorFlow is first imported, or its C++ start-up chatter reaches the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

logger = logging.getLogger(__name__)

_PREDICT_CHUNK = 16384


def _keras():
    """Import Keras (TensorFlow backend) on first use and make its ops deterministic."""
    import keras

    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - determinism is best effort, seeds still apply
        logger.debug("could not enable TensorFlow op determinism", exc_info=True)
    return keras


def build_network(n_features, hidden, dropout, learning_rate, task):
    """Build and compile the dense network shared by the wrappers and the tuner.

    Parameters
    ----------
    n_features : int
        Width of the (already preprocessed) input.
    hidden : sequence of int
        Units per hidden layer; zeros are skipped so a tuner can switch a layer off.
    dropout : float
        Dropout rate after each hidden layer.
    learning_rate : float
        Adam learning rate.
    task : {"regression", "classification"}
        Regression gets one linear output and MSE; classification one sigmoid output and binary cross-entropy.

    Returns
    -------
    keras.Model
    """
    keras = _keras()
    layers = [keras.Input(shape=(int(n_features),))]
    for units in hidden:
        if int(units) <= 0:
            continue
        layers.append(keras.layers.Dense(int(units), activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(float(dropout)))
    if task == "classification":
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
        loss = "binary_crossentropy"
    else:
        layers.append(keras.layers.Dense(1))
        loss = "mse"
    model = keras.Sequential(layers)
    # Several batches per graph call: for a network this small, per-step Python overhead dominates training time.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)), loss=loss,
                  steps_per_execution=16)
    return model


def validation_split(y, fraction, seed, stratify):
    """Return (train_idx, val_idx): a seeded shuffle, stratified for classes, or (all, None) when too small."""
    n = len(y)
    n_val = int(round(n * fraction)) if fraction else 0
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), None
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n)
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val = []
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        val.extend(members[: max(1, int(round(len(members) * fraction)))])
    val = np.sort(np.asarray(val, dtype=int))
    return np.setdiff1d(np.arange(n), val), val


class _KerasMLPBase(BaseEstimator):
    """Shared fit/predict/pickle logic; subclasses set the task and target encoding."""

    _task = "regression"

    def __init__(
        self,
        hidden=(64, 32),
        dropout=0.1,
        learning_rate=1e-3,
        epochs=200,
        batch_size=256,
        patience=10,
        validation_fraction=0.15,
        random_state=0,
        verbose=0,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    def _fit_network(self, X, target, sample_weight, stratify_on):
        keras = _keras()
        keras.utils.set_random_seed(int(self.random_state))
        train_idx, val_idx = validation_split(stratify_on, self.validation_fraction, self.random_state,
                                              stratify=self._task == "classification")
        self.model_ = build_network(X.shape[1], self.hidden, self.dropout, self.learning_rate, self._task)
        monitor = "val_loss" if val_idx is not None else "loss"
        stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=int(self.patience), restore_best_weights=True)
        sw = None if sample_weight is None else sample_weight.astype("float32")
        val_data = None
        if val_idx is not None:
            val_data = (X[val_idx], target[val_idx]) if sw is None else (X[val_idx], target[val_idx], sw[val_idx])
        history = self.model_.fit(
            X[train_idx], target[train_idx], sample_weight=None if sw is None else sw[train_idx],
            validation_data=val_data, epochs=int(self.epochs), batch_size=int(self.batch_size),
            shuffle=True, callbacks=[stop], verbose=self.verbose,
        )
        self.n_epochs_ = len(history.history["loss"])
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        logger.debug("%s stopped after %d of %d epochs", type(self).__name__, self.n_epochs_, self.epochs)

    def _raw_predict(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        # Calling the model directly skips Keras' predict() loop setup, which dominates on small batches.
        out = [np.asarray(self.model_(X[i:i + _PREDICT_CHUNK], training=False)) for i in range(0, len(X), _PREDICT_CHUNK)]
        return np.concatenate(out).reshape(-1) if out else np.empty(0, dtype=np.float32)

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ hands back the live __dict__
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                model.save(path)
                state["_model_keras_bytes"] = path.read_bytes()
        return state

    def __setstate__(self, state):
        blob = state.pop("_model_keras_bytes", None)
        super().__setstate__(state)
        if blob is not None:
            keras = _keras()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                path.write_bytes(blob)
                self.model_ = keras.saving.load_model(path, compile=False, safe_mode=True)


class KerasMLPRegressor(RegressorMixin, _KerasMLPBase):
    """Dense network regressor with early stopping (best weights restored) and a seeded, repeatable fit.

    The target is standardised internally so one learning rate suits any target scale.
    """

    _task = "regression"

    def fit(self, X, y, sample_weight=None):
        """Fit on preprocessed numeric ``X`` and returns self."""
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        target = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self._fit_network(X, target, sw, stratify_on=target)
        return self

    def predict(self, X):
        """Predicted target values, shape (n,)."""
        return self._raw_predict(X).astype(np.float64) * self.y_scale_ + self.y_mean_


class KerasMLPClassifier(ClassifierMixin, _KerasMLPBase):
    """Binary dense network classifier; ``predict_proba`` returns (n, 2) ordered like ``classes_``.

    ``class_weight`` is None, ``'balanced'`` or a ``{class: weight}`` dict, applied as sample weights.
    """

    _task = "classification"

    def __init__(
        self,
        hidden=(64, 32),
        dropout=0.1,
        learning_rate=1e-3,
        epochs=200,
        batch_size=256,
        patience=10,
        validation_fraction=0.15,
        random_state=0,
        verbose=0,
        class_weight=None,
    ):
        super().__init__(hidden=hidden, dropout=dropout, learning_rate=learning_rate, epochs=epochs,
                         batch_size=batch_size, patience=patience, validation_fraction=validation_fraction,
                         random_state=random_state, verbose=verbose)
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None):
        """Fit on preprocessed numeric ``X`` and binary ``y``; returns self."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"KerasMLPClassifier is binary; y has {len(self.classes_)} classes {list(self.classes_)}")
        weights = None
        if self.class_weight is not None:
            weights = compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            weights = sw if weights is None else weights * sw
        self._fit_network(X, encoded.astype(np.float32), weights, stratify_on=encoded)
        return self

    def predict_proba(self, X):
        """Class probabilities, shape (n, 2)."""
        p = np.clip(self._raw_predict(X).astype(np.float64), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        """Most likely class label (probability of ``classes_[1]`` >= 0.5)."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
