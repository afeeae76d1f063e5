"""Keras multi-layer perceptrons behind the scikit-learn estimator interface.

The wrappers store constructor arguments only, import Keras lazily inside ``fit`` (importing this module stays
cheap) and keep the fitted network in ``model_``. Pickling goes through the ``.keras`` format bytes so a pickled
wrapper round-trips without pickling TensorFlow objects.

A loaded wrapper (artifact or pickle) holds a :class:`SavedNetwork`: prediction of a Dense stack reads its weights
straight from the ``.keras`` file (NumPy forward pass), so ``predict``, ``explain``, the worker and the API never
import TensorFlow (about 9 of the 12 seconds of an ``explain`` on 2 cores); Keras is imported only if something
needs the network itself (another layer type, ``.layers``, ...).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import weakref
import zipfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

logger = logging.getLogger(__name__)

_PREDICT_CHUNK = 16384
# A fit of at most this many training steps runs eagerly: tracing the train and test graphs costs ~1.4 s per fit on
# 2 cores, which a fit of 2 epochs on 60 rows spends 7x over (0.2 s eager); from ~40 steps on they cost the same,
# and past that the graph wins. A default fit (200 epochs with early stopping) is never this small.
EAGER_MOST_STEPS = 32


def import_keras():
    """Import Keras (TensorFlow backend) on first use and make its ops deterministic.

    The environment is set here, at first use and not when this module is imported, and only where the user
    has not set it: TensorFlow reads it once, when it is first imported, and would otherwise print its C++
    start-up chatter to the user's terminal.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - determinism is best effort, seeds still apply
        logger.debug("could not enable TensorFlow op determinism", exc_info=True)
    return keras


def build_network(n_features, hidden, dropout, learning_rate, task, seed=None, run_eagerly=False):
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
    seed : int, optional
        Seeds the initial weights and the dropout masks of this network only (Keras' global generators are
        left alone); None draws them from Keras' global generator.
    run_eagerly : bool, default False
        Train step by step in Python instead of tracing a graph (see :data:`EAGER_MOST_STEPS`).

    Returns
    -------
    keras.Model
    """
    keras = import_keras()
    seeds = iter(range(int(seed) * 1000, int(seed) * 1000 + 1000)) if seed is not None else None

    def dense(units, **kwargs):
        if seeds is not None:
            kwargs["kernel_initializer"] = keras.initializers.GlorotUniform(seed=next(seeds))
        return keras.layers.Dense(units, **kwargs)

    layers = [keras.Input(shape=(int(n_features),))]
    for units in hidden:
        if int(units) <= 0:
            continue
        layers.append(dense(int(units), activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(float(dropout), seed=None if seeds is None else next(seeds)))
    if task == "classification":
        layers.append(dense(1, activation="sigmoid"))
        loss = "binary_crossentropy"
    else:
        layers.append(dense(1))
        loss = "mse"
    model = keras.Sequential(layers)
    # Several batches per graph call: for a network this small, per-step Python overhead dominates training time.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)), loss=loss,
                  steps_per_execution=16, run_eagerly=bool(run_eagerly))
    return model


_DENSE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DENSE_ACTIVATIONS = ("relu", "sigmoid", "linear")  # what the NumPy forward pass computes


def _dense_stack(model):
    """[(W, b, activation)] of a network made only of Dense (relu/sigmoid/linear) and Dropout layers, else None."""
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Dropout", "InputLayer"):
            continue
        activation = getattr(getattr(layer, "activation", None), "__name__", None)
        if kind != "Dense" or activation not in _DENSE_ACTIVATIONS or not layer.use_bias:
            return None
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
        layers.append((kernel, bias, activation))
    return layers


class SavedNetwork:
    """A network in ``.keras`` format, read without TensorFlow; Keras loads it (``safe_mode=True``) on first need.

    It stands in for the ``keras.Model`` in a loaded wrapper's ``model_``: :meth:`dense_stack` gives the weights the
    NumPy forward pass needs, :meth:`save` writes the same bytes back, and anything else (calling it, ``.layers``)
    is handed to the Keras model, imported then.
    """

    keras_format = True  # artifacts.py saves a wrapper holding one in the Keras layout

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self._model = None

    @classmethod
    def from_path(cls, path) -> SavedNetwork:
        """Read a ``.keras`` file."""
        return cls(Path(path).read_bytes())

    def save(self, path) -> None:
        """Write the ``.keras`` bytes (what ``keras.Model.save`` would have written when it was loaded)."""
        Path(path).write_bytes(self.data)

    def dense_stack(self):
        """[(W, b, activation)] of a Sequential stack of Dense and Dropout layers read from the file, else None."""
        try:
            with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
                config = json.loads(archive.read("config.json"))
                weights = archive.read("model.weights.h5")
        except (KeyError, ValueError, zipfile.BadZipFile):
            return None
        if config.get("class_name") != "Sequential":
            return None
        specs = []
        for layer in (config.get("config") or {}).get("layers") or []:
            kind, cfg = layer.get("class_name"), layer.get("config") or {}
            if kind in ("InputLayer", "Dropout"):
                continue
            if kind != "Dense" or cfg.get("activation") not in _DENSE_ACTIVATIONS or not cfg.get("use_bias", True):
                return None
            specs.append((int(cfg["units"]), cfg["activation"]))
        import h5py  # a Keras dependency; importing it does not import TensorFlow

        layers = []
        with h5py.File(io.BytesIO(weights), "r") as h5:
            for i, (units, activation) in enumerate(specs):  # Keras names the i-th Dense layer's weights dense_i
                group = h5.get(f"layers/dense{'' if i == 0 else f'_{i}'}/vars")
                if group is None or set(group) != {"0", "1"}:
                    return None
                kernel = np.asarray(group["0"], dtype=np.float32)
                bias = np.asarray(group["1"], dtype=np.float32)
                chained = not layers or layers[-1][0].shape[1] == kernel.shape[0]
                if kernel.ndim != 2 or kernel.shape[1] != units or bias.shape != (units,) or not chained:
                    return None
                layers.append((kernel, bias, activation))
        return layers or None

    def keras_model(self):
        """The ``keras.Model`` (imports TensorFlow the first time)."""
        if self._model is None:
            keras = import_keras()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                path.write_bytes(self.data)
                self._model = keras.saving.load_model(path, compile=False, safe_mode=True)
        return self._model

    def __call__(self, *args, **kwargs):
        return self.keras_model()(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.keras_model(), name)


def _numpy_forward(X, layers):
    """Outputs (n,) of a Dense stack given as [(W, b, activation)], in float32 like Keras."""
    out = np.asarray(X, dtype=np.float32)
    for kernel, bias, activation in layers:
        out = out @ kernel + bias
        if activation == "relu":
            np.maximum(out, 0.0, out=out)
        elif activation == "sigmoid":
            out = (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
    return out.reshape(-1)


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


def seeded_batches(X, target, sample_weight, idx, batch_size, seed, shuffle):
    """``tf.data`` batches of rows ``idx``, reshuffled each epoch from ``seed`` when ``shuffle``.

    The shuffle carries its own seed, so training never needs (or changes) TensorFlow's global seed.
    """
    import tensorflow as tf

    parts = (X[idx], target[idx]) if sample_weight is None else (X[idx], target[idx], sample_weight[idx])
    data = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle:
        data = data.shuffle(len(idx), seed=int(seed), reshuffle_each_iteration=True)
    return data.batch(int(batch_size))


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

    def _sample_weight(self, sample_weight, n):
        """``sample_weight`` as float64 of shape (n,), or None; ValueError when it cannot weigh anything."""
        if sample_weight is None:
            return None
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.ndim == 0:
            sw = np.full(n, float(sw))
        if sw.shape != (n,):
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},)")
        if not np.any(sw > 0):
            raise ValueError("sample_weight is all zero (or negative); there is nothing to fit")
        return sw

    def _fit_network(self, X, target, sample_weight, stratify_on):
        # Seeded locally (weights, dropout, the per-epoch shuffle): fitting never reseeds the process's generators.
        keras = import_keras()
        seed = int(self.random_state)
        train_idx, val_idx = validation_split(stratify_on, self.validation_fraction, seed,
                                              stratify=self._task == "classification")
        steps = int(self.epochs) * -(-len(train_idx) // int(self.batch_size))
        self.model_ = build_network(X.shape[1], self.hidden, self.dropout, self.learning_rate, self._task, seed=seed,
                                    run_eagerly=steps <= EAGER_MOST_STEPS)
        monitor = "val_loss" if val_idx is not None else "loss"
        stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=int(self.patience), restore_best_weights=True)
        sw = None if sample_weight is None else sample_weight.astype("float32")

        def batches(idx, shuffle):
            return seeded_batches(X, target, sw, idx, self.batch_size, seed, shuffle)

        history = self.model_.fit(
            batches(train_idx, shuffle=True), validation_data=None if val_idx is None else batches(val_idx, False),
            epochs=int(self.epochs), callbacks=[stop], verbose=self.verbose,
            shuffle=False,  # the dataset shuffles itself; Keras's default True only warns once per fit for a Dataset
        )
        self.n_epochs_ = len(history.history["loss"])
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        logger.debug("%s stopped after %d of %d epochs", type(self).__name__, self.n_epochs_, self.epochs)

    def _raw_predict(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        dense = self._dense_layers()
        if dense is not None:
            return _numpy_forward(X, dense)
        # Calling the model directly skips Keras' predict() loop setup, which dominates on small batches.
        out = [np.asarray(self.model_(X[i:i + _PREDICT_CHUNK], training=False)) for i in range(0, len(X), _PREDICT_CHUNK)]
        return np.concatenate(out).reshape(-1) if out else np.empty(0, dtype=np.float32)

    def _dense_layers(self):
        """The network as [(W, b, activation)] for a NumPy forward pass, or None if it has other layers.

        Inference of a stack of Dense layers (Dropout is the identity then) is two matrix products; done in NumPy
        it costs microseconds where each eager Keras call costs ~10 ms, which dominated the permutation SHAP of
        one customer (dozens of calls). Built once per loaded network (a weak-keyed cache), never saved.
        """
        net = self.model_
        if net not in _DENSE_CACHE:  # keyed by the network: predict leaves the estimator's state alone
            _DENSE_CACHE[net] = net.dense_stack() if isinstance(net, SavedNetwork) else _dense_stack(net)
        return _DENSE_CACHE[net]

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
            self.model_ = SavedNetwork(blob)  # Keras is imported only if the network itself is needed


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
        sw = self._sample_weight(sample_weight, len(y))
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
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"Only binary classification is supported. KerasMLPClassifier got {len(self.classes_)} "
                             f"classes {list(self.classes_)}")
        weights = None
        if self.class_weight is not None:
            weights = compute_sample_weight(self.class_weight, y)
        sw = self._sample_weight(sample_weight, len(y))
        if sw is not None:
            weights = sw if weights is None else weights * sw
        self._fit_network(X, encoded.astype(np.float32), weights, stratify_on=encoded)
        return self

    def predict_proba(self, X):
        """Class probabilities, shape (n, 2)."""
        p = np.clip(self._raw_predict(X).astype(np.float64), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        """Most likely class label (probability of ``classes_[1]`` >= 0.5)."""
        positive = self.predict_proba(X)[:, 1] >= 0.5  # first: it raises NotFittedError before fit
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
