"""Safe serialisation of fitted pipelines into a directory of artifacts.

A pipeline is split so that each part goes to the safest format that can hold it:

* final step XGBoost: the model in XGBoost's UBJ format, its constructor params in
  JSON, the steps before it in skops;
* final step a Keras wrapper (attribute ``model_`` holding a ``keras.Model``): the
  network in ``.keras`` format (loaded with ``safe_mode=True``), the wrapper's
  params and learned attributes in JSON, the steps before it in skops;
* anything else (sklearn/imblearn pipelines, KMeans, trees, dicts of them): skops,
  loaded only with an explicit list of trusted types;
* an object with ``to_arrays()`` / ``from_arrays(params, arrays)`` from a module in
  :data:`ARRAY_MODULES` (the recommenders): ``arrays.npz`` (loaded with ``allow_pickle=False``)
  plus ``arrays.json`` (the class and its JSON parameters);
* what none of these can hold (e.g. a voting ensemble with XGBoost members): pickle
  through joblib. The registry loads it only after its SHA-256 matched both the
  manifest and the ``models`` collection.

Every function here works on a directory; hashing, manifests and the store are the
registry's job (:mod:`custscore.models.registry`).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from custscore.errors import ArtifactIntegrityError

log = logging.getLogger(__name__)

# skops reports the types it would have to trust; only these families are accepted.
TRUSTED_PREFIXES = ("sklearn.", "imblearn.", "numpy.", "scipy.", "custscore.models.")
TRUSTED_BUILTINS = frozenset({
    "builtins.slice", "builtins.bytes", "builtins.bytearray", "builtins.complex", "builtins.frozenset",
    "builtins.range", "collections.OrderedDict", "collections.defaultdict",
})
# Classes rebuilt from JSON by name must live in one of these modules.
WRAPPER_MODULES = ("custscore.models.",)
# Classes saved as numpy arrays + JSON (``arrays`` layout) must live in one of these modules.
ARRAY_MODULES = ("custscore.recommend.",)
ARRAYS_FILE, ARRAYS_STATE = "arrays.npz", "arrays.json"
XGB_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")

REST_FILE = "pipeline.skops"
STATE_FILE = "model.json"
LAYOUT_FILES = {"skops": "pipeline.skops", "pickle": "pipeline.joblib", "xgboost": "model.ubj", "keras": "model.keras"}
FORMATS = {".skops": "skops", ".joblib": "pickle", ".ubj": "xgboost-ubj", ".keras": "keras", ".json": "json",
           ".npz": "numpy-npz"}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_format(name: str) -> str:
    """The format recorded in the manifest for an artifact file name."""
    return FORMATS.get(Path(name).suffix, "unknown")


def _final_step(obj: Any) -> tuple[Any, Any]:
    """(the shell to skops, the final estimator); the shell is None for a bare estimator."""
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list) and steps:
        return obj, steps[-1][1]
    return None, obj


def _is_xgboost(est: Any) -> bool:
    return type(est).__module__.startswith("xgboost.") and type(est).__name__ in XGB_CLASSES


def _is_keras_wrapper(est: Any) -> bool:
    # checked on the MRO's module names so plain sklearn saves never import TensorFlow
    net = getattr(est, "model_", None)
    if getattr(type(net), "keras_format", False):  # a loaded network not yet opened by Keras (keras_mlp.SavedNetwork)
        return True
    return net is not None and any(c.__module__.startswith("keras") for c in type(net).__mro__)


def detect_layout(obj: Any) -> str:
    """``xgboost``, ``keras`` or ``skops``: how :func:`dump` will try to save ``obj``."""
    if hasattr(obj, "to_arrays") and type(obj).__module__.startswith(ARRAY_MODULES):
        return "arrays"
    _, est = _final_step(obj)
    if _is_xgboost(est):
        return "xgboost"
    if _is_keras_wrapper(est):
        return "keras"
    return "skops"


def dump(obj: Any, directory: Path) -> str:
    """Write ``obj`` into ``directory`` in the safest format that holds it; return the layout used.

    Parameters
    ----------
    obj : object
        A fitted Pipeline, estimator, or a dict/tuple of them.
    directory : Path
        An existing, empty directory.

    Returns
    -------
    str
        ``skops``, ``xgboost``, ``keras`` or ``pickle``.
    """
    layout = detect_layout(obj)
    try:
        if layout == "xgboost":
            _dump_xgboost(obj, directory)
        elif layout == "keras":
            _dump_keras(obj, directory)
        elif layout == "arrays":
            _dump_arrays(obj, directory)
        else:
            _dump_skops(obj, directory / LAYOUT_FILES["skops"])
    except Exception as exc:  # noqa: BLE001 - any failure of the safe path falls back to hash-checked pickle
        for path in directory.iterdir():
            path.unlink()
        log.warning("safe formats cannot hold this %s (%s); saving it as pickle, loaded only after its "
                    "SHA-256 matches the registry", type(obj).__name__, exc)
        import joblib

        joblib.dump(obj, directory / LAYOUT_FILES["pickle"])
        layout = "pickle"
    log.info("saved %s with layout %s: %s", type(obj).__name__, layout,
             ", ".join(f"{p.name} ({file_format(p.name)})" for p in sorted(directory.iterdir())))
    return layout


def load(directory: Path, layout: str) -> Any:
    """Rebuild the object :func:`dump` wrote with ``layout``; call only after the hashes were verified."""
    if layout == "skops":
        return _load_skops(directory / LAYOUT_FILES["skops"])
    if layout == "pickle":
        import joblib

        return joblib.load(directory / LAYOUT_FILES["pickle"])
    if layout == "arrays":
        return _load_arrays(directory)
    if layout in ("xgboost", "keras"):
        state = _from_json(json.loads((directory / STATE_FILE).read_text()))
        rest = _load_skops(directory / REST_FILE)
        est = _load_xgboost(directory, state) if layout == "xgboost" else _load_keras(directory, state)
        for name, value in rest["attrs"].items():
            setattr(est, name, value)
        shell = rest["pipeline"]
        if shell is None:
            return est
        shell.steps[-1] = (shell.steps[-1][0], est)
        return shell
    raise ArtifactIntegrityError(f"model directory {directory} has unknown layout {layout!r}; retrain the model")


# -- skops ---------------------------------------------------------------------------------------------------------
def _untrusted(path: Path) -> tuple[list[str], list[str]]:
    """(types to trust, types refused) that skops reports for a file."""
    import skops.io as sio

    found = sio.get_untrusted_types(file=path)
    ok = [t for t in found if t.startswith(TRUSTED_PREFIXES) or t in TRUSTED_BUILTINS]
    return ok, [t for t in found if t not in ok]


def _dump_skops(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, path)
    _, refused = _untrusted(path)
    if refused:
        raise TypeError(f"skops would need to trust {', '.join(refused)}")


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    trusted, refused = _untrusted(path)
    if refused:
        raise ArtifactIntegrityError(
            f"{path.name} in {path.parent} needs untrusted types {', '.join(refused)}; refusing to load it "
            "(only sklearn, imblearn, numpy, scipy and custscore.models types are trusted); retrain the model"
        )
    return sio.load(path, trusted=trusted)


# -- xgboost and keras -----------------------------------------------------------------------------------------------
def _shell(obj: Any) -> Any:
    """A shallow copy of the pipeline with the final estimator replaced by a placeholder."""
    shell, _ = _final_step(obj)
    if shell is None:
        return None
    shell = copy.copy(shell)
    shell.steps = list(shell.steps[:-1]) + [(shell.steps[-1][0], "passthrough")]
    return shell


def _split_state(values: dict) -> tuple[dict, dict]:
    """(JSON-encodable items, the rest) of a dict of attributes."""
    plain, rest = {}, {}
    for name, value in values.items():
        try:
            json.dumps(_to_json(value), allow_nan=True)
            plain[name] = value
        except TypeError:
            rest[name] = value
    return plain, rest


def _write_state(directory: Path, obj: Any, state: dict, other_attrs: dict) -> None:
    (directory / STATE_FILE).write_text(json.dumps(_to_json(state), indent=1, sort_keys=True))
    _dump_skops({"pipeline": _shell(obj), "attrs": other_attrs}, directory / REST_FILE)


def _dump_xgboost(obj: Any, directory: Path) -> None:
    _, est = _final_step(obj)
    params, dropped = _split_state(est.get_params(deep=False))
    if dropped:
        log.warning("XGBoost params %s are not JSON and are not saved (prediction does not use them)",
                    ", ".join(sorted(dropped)))
    est.save_model(directory / LAYOUT_FILES["xgboost"])
    state = {"class": type(est).__name__, "params": params}
    _write_state(directory, obj, state, {})


def _load_xgboost(directory: Path, state: dict) -> Any:
    import xgboost

    if state["class"] not in XGB_CLASSES:
        raise ArtifactIntegrityError(f"{STATE_FILE} in {directory} names class {state['class']!r}, not an XGBoost "
                                     "estimator; retrain the model")
    est = getattr(xgboost, state["class"])(**state["params"])
    est.load_model(directory / LAYOUT_FILES["xgboost"])
    return est


def _dump_keras(obj: Any, directory: Path) -> None:
    _, est = _final_step(obj)
    params = est.get_params(deep=False)
    learned = {k: v for k, v in vars(est).items() if k not in params and k != "model_"}
    plain, other = _split_state(learned)
    _, bad_params = _split_state(params)
    if bad_params:
        raise TypeError(f"Keras wrapper params {', '.join(sorted(bad_params))} are not JSON")
    est.model_.save(directory / LAYOUT_FILES["keras"])
    cls = type(est)
    state = {"class": f"{cls.__module__}:{cls.__qualname__}", "params": params, "attrs": plain}
    _write_state(directory, obj, state, other)


def _allowed_class(state: dict, allowed: tuple[str, ...], state_file: Path) -> Any:
    """The class a state file names, imported only from the ``allowed`` module prefixes (never arbitrary code)."""
    module, _, name = state["class"].partition(":")
    if not module.startswith(allowed):
        raise ArtifactIntegrityError(f"{state_file.name} in {state_file.parent} names class {state['class']!r} outside "
                                     f"{', '.join(allowed)}; refusing to import it; retrain the model")
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    return cls


def _load_keras(directory: Path, state: dict) -> Any:
    cls = _allowed_class(state, WRAPPER_MODULES, directory / STATE_FILE)
    est = cls(**state["params"])
    for attr, value in state["attrs"].items():
        setattr(est, attr, value)
    from custscore.models.keras_mlp import SavedNetwork  # Keras (TensorFlow) only when the network itself is needed

    est.model_ = SavedNetwork.from_path(directory / LAYOUT_FILES["keras"])
    return est


# -- numpy arrays + JSON ------------------------------------------------------------------------------------------
def _dump_arrays(obj: Any, directory: Path) -> None:
    params, arrays = obj.to_arrays()
    bad = [k for k, v in arrays.items() if np.asarray(v).dtype.kind == "O"]
    if bad:
        raise TypeError(f"arrays {', '.join(bad)} hold Python objects; use str or numeric dtypes")
    np.savez(directory / ARRAYS_FILE, **{k: np.asarray(v) for k, v in arrays.items()})
    cls = type(obj)
    state = {"class": f"{cls.__module__}:{cls.__qualname__}", "params": params}
    (directory / ARRAYS_STATE).write_text(json.dumps(_to_json(state), indent=1, sort_keys=True))


def _load_arrays(directory: Path) -> Any:
    state = _from_json(json.loads((directory / ARRAYS_STATE).read_text()))
    cls = _allowed_class(state, ARRAY_MODULES, directory / ARRAYS_STATE)
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return cls.from_arrays(state["params"], arrays)


# -- tagged JSON (keeps arrays and tuples intact through a round trip) -------------------------------------------
def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUSO":
            raise TypeError(f"array of dtype {value.dtype} is not JSON")
        return {"__ndarray__": [_to_json(v) for v in value.tolist()], "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):  # e.g. class_weight={0: 1, 1: 5}
            return {"__items__": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
        return {k: _to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(_from_json(value["__ndarray__"]), dtype=np.dtype(value["dtype"]))
        if "__items__" in value:
            return {_from_json(k): _from_json(v) for k, v in value["__items__"]}
        if "__tuple__" in value:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    return value
