"""Loaded Keras wrappers predict without importing TensorFlow (issue 12 item 10: cold start, no TF/absl lines).

A wrapper loaded from an artifact (or a pickle) holds a ``SavedNetwork``: the Dense stack's weights are read from
the ``.keras`` file, the NumPy forward pass predicts, and Keras is imported only if the network itself is needed.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from custscore.models import artifacts
from custscore.models.keras_mlp import KerasMLPClassifier, KerasMLPRegressor, SavedNetwork

TF_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "tensorflow")


def _data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    return KerasMLPClassifier(hidden=(8, 4), epochs=3, patience=2, random_state=0).fit(X, y), X


def test_loaded_artifact_holds_the_saved_network_and_predicts_exactly_as_fitted(fitted, tmp_path):
    est, X = fitted
    assert artifacts.dump(est, tmp_path) == "keras"
    loaded = artifacts.load(tmp_path, "keras")
    assert isinstance(loaded.model_, SavedNetwork)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    dense = [layer for layer in est.model_.layers if type(layer).__name__ == "Dense"]
    for (w, b, act), layer in zip(loaded.model_.dense_stack(), dense, strict=True):
        np.testing.assert_array_equal(w, layer.get_weights()[0])
        np.testing.assert_array_equal(b, layer.get_weights()[1])
        assert act == layer.activation.__name__
    again = tmp_path / "again"  # a loaded wrapper saves again in the Keras layout, byte for byte
    again.mkdir()
    assert artifacts.dump(loaded, again) == "keras"
    assert (again / "model.keras").read_bytes() == (tmp_path / "model.keras").read_bytes()


def test_pickled_wrapper_round_trips_through_the_saved_network(fitted):
    est, X = fitted
    back = pickle.loads(pickle.dumps(est))
    assert isinstance(back.model_, SavedNetwork)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert pickle.loads(pickle.dumps(back)).predict_proba(X[:3]).shape == (3, 2)


def test_the_saved_network_hands_anything_else_to_keras(fitted, tmp_path):
    est, X = fitted
    net = SavedNetwork(pickle.loads(pickle.dumps(est)).model_.data)
    assert [type(layer).__name__ for layer in net.layers] == [type(layer).__name__ for layer in est.model_.layers]
    np.testing.assert_allclose(np.asarray(net(X[:4], training=False)).reshape(-1), est.predict_proba(X[:4])[:, 1],
                               rtol=1e-5)


def test_a_network_that_is_not_a_dense_stack_falls_back_to_keras():
    assert SavedNetwork(b"not a zip").dense_stack() is None


def test_importing_the_scoring_modules_does_not_import_tensorflow():
    code = ("import sys, custscore.cli, custscore.models.predict, custscore.scorer.worker, custscore.api.service; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_loaded_regressor_predicts_in_a_fresh_process_without_tensorflow(tmp_path):
    X, y = _data()
    est = KerasMLPRegressor(hidden=(6,), epochs=2, patience=1, random_state=0).fit(X, y.astype(float))
    artifacts.dump(est, tmp_path)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", est.predict(X))
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import numpy as np
        from custscore.models import artifacts
        d = Path({str(tmp_path)!r})
        est = artifacts.load(d, "keras")
        assert np.array_equal(est.predict(np.load(d / "X.npy")), np.load(d / "expected.npy"))
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    assert not [line for line in out.stderr.splitlines() if any(t in line for t in TF_LINES)], out.stderr
