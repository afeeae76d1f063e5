"""The model registry: versioned artifacts on disk, their manifests in the ``models`` collection.

Each saved model lives in ``$CUSTSCORE_HOME/models/<task>/<version>/``: its artifacts
(see :mod:`custscore.models.artifacts`) and ``manifest.json`` with the SHA-256 of
each. The same manifest, plus the SHA-256 of ``manifest.json`` itself, is recorded
in the ``models`` collection under ``_id = "<task>:<version>"``. Loading checks the
files against the manifest and the manifest against the collection before anything
is deserialised, so a changed, missing or swapped file is refused and nothing loads.

One entry per task carries the alias ``production`` in its ``aliases`` list;
:func:`promote` moves it inside one store transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import platform
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from custscore.config import Settings
from custscore.errors import ArtifactIntegrityError, ModelError
from custscore.models import artifacts, calibration
from custscore.models.registry_cache import fetch_artifacts, upload_artifacts
from custscore.store.base import Store
from custscore.store.plain import plain_deep
from custscore.store.schema import MODELS

log = logging.getLogger(__name__)

PRODUCTION = "production"
LATEST = "latest"  # the newest version of a task, wherever a version is taken
MANIFEST = "manifest.json"
VERSION_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
TASK_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
# manifest name -> (module to look for, distributions that may provide it)
LIBRARIES = {
    "sklearn": ("sklearn", ("scikit-learn",)), "xgboost": ("xgboost", ("xgboost",)),
    "keras": ("keras", ("keras",)), "tensorflow": ("tensorflow", ("tensorflow", "tensorflow-cpu")),
    "shap": ("shap", ("shap",)), "skops": ("skops", ("skops",)), "numpy": ("numpy", ("numpy",)),
    "pandas": ("pandas", ("pandas",)), "imblearn": ("imblearn", ("imbalanced-learn",)),
    "joblib": ("joblib", ("joblib",)), "implicit": ("implicit", ("implicit",)),
    "scipy": ("scipy", ("scipy",)),
}
PRIMARY = {"regression": ("mae", "rmse", "r2"), "classification": ("roc_auc", "pr_auc", "f1"),
           "segment": ("silhouette", "davies_bouldin"), "ranking": ("ndcg@10", "recall@10", "coverage"),
           "forecast": ("mase", "wape")}  # demand runs (forecast/production.py): backtest MASE of the chosen model


@dataclass
class LoadedModel:
    """A verified, deserialised model and its manifest."""

    pipeline: Any
    manifest: dict
    version: str
    task: str


def _fix(task: str) -> str:
    return (f"retrain with `custscore train --task {task}` "
            f"or promote another version with `custscore promote {task} VERSION`")


def _json_default(value: Any) -> Any:
    """Plain JSON values for numpy, pandas, datetime and path objects."""
    if isinstance(value, np.generic | np.ndarray):
        return plain_deep(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, pd.Series):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot go into a model manifest")


def library_versions() -> dict[str, str]:
    """Versions of Python and the installed ML libraries (only those installed)."""
    out = {"python": platform.python_version()}
    for name, (module, dists) in LIBRARIES.items():
        if importlib.util.find_spec(module) is None:
            continue
        for dist in dists:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def training_fingerprint(frame: pd.DataFrame, labels: Any = None) -> str:
    """Identify training data: same rows, columns, dtypes and labels, whatever their order, give the same value.

    Parameters
    ----------
    frame : pandas.DataFrame
        The training features.
    labels : pandas.Series or array-like, optional
        Labels aligned with ``frame``'s rows (a Series is aligned by index).

    Returns
    -------
    str
        The first 16 hex digits of a SHA-256 over the frame sorted by columns and index.
    """
    digest = hashlib.sha256()
    ordered = frame.sort_index(axis=1).sort_index(axis=0, kind="stable")
    digest.update(json.dumps([[str(c), str(ordered[c].dtype)] for c in ordered.columns]).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=True).to_numpy().tobytes())
    if labels is not None:
        series = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels), index=frame.index)
        series = series.sort_index(kind="stable")
        digest.update(str(series.dtype).encode())
        digest.update(pd.util.hash_pandas_object(series, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _task_dir(settings: Settings, task: str) -> Path:
    if not TASK_RE.match(task):
        raise ModelError(f"task name {task!r} is not allowed; use letters, digits, '_' or '-'")
    return Path(settings.home) / "models" / task


def _new_version(store: Store, task: str, task_dir: Path) -> tuple[str, dt.datetime]:
    """A version string that sorts by creation time (to the microsecond) and is unused."""
    for _ in range(100):
        now = dt.datetime.now(dt.UTC)
        version = f"{now:%Y%m%d-%H%M%S}-{now.microsecond:05x}{secrets.randbelow(16):x}"
        if not (task_dir / version).exists() and store[MODELS].find_one({"_id": f"{task}:{version}"}) is None:
            return version, now
    raise ModelError(f"could not pick an unused version for task {task!r} under {task_dir}; try again")


def save_model(store: Store, settings: Settings, task: str, pipeline: Any, *, kind: str, features: list[dict],
               metrics: dict, threshold: float | None = None, training_fingerprint: str,
               extra: dict | None = None, promote: bool = True) -> str:
    """Write a fitted model to the registry and record it in the ``models`` collection.

    Parameters
    ----------
    store, settings
        Where the record and the artifacts go (``settings.home / "models" / task / version``).
    task : str
        ``satisfaction``, ``churn``, ``segment`` or a user target name.
    pipeline : object
        The fitted Pipeline (or estimator, or dict of them for segmentation).
    kind : str
        ``regression``, ``classification`` or ``segment``.
    features : list of dict
        Feature schema (name, kind, dtype, ...).
    metrics : dict
        Metric name -> value.
    threshold : float, optional
        Decision threshold of a classifier.
    training_fingerprint : str
        :func:`training_fingerprint` of the training data.
    extra : dict, optional
        Free-form JSON (leaderboard rows, SHAP importance, segment profiles, rules text...).
    promote : bool
        Make this version the task's production model.

    Returns
    -------
    str
        The new version, ``YYYYMMDD-HHMMSS-<6 hex>``.
    """
    task_dir = _task_dir(settings, task)
    task_dir.mkdir(parents=True, exist_ok=True)
    version, created = _new_version(store, task, task_dir)
    final = task_dir / version
    # artifacts are written beside their final place and renamed in one step: no half-written version dir
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=task_dir))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from a scorer running as another user
    try:
        layout = artifacts.dump(pipeline, tmp)
        manifest = {
            "task": task, "kind": kind, "version": version,
            "created_at": created.isoformat(timespec="microseconds"),
            "layout": layout, "features": features, "metrics": metrics, "threshold": threshold,
            "training_fingerprint": training_fingerprint, "libraries": library_versions(),
            "artifacts": {p.name: {"sha256": artifacts.sha256_file(p), "bytes": p.stat().st_size,
                                   "format": artifacts.file_format(p.name)} for p in sorted(tmp.iterdir())},
            "extra": extra or {},
        }
        text = json.dumps(manifest, indent=2, default=_json_default)
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        upload_artifacts(store, tmp)  # before the record: a record never names a blob the database lacks
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    record = json.loads(text)
    # file names contain dots, which are awkward as MongoDB keys: the record keeps artifacts as a list
    record["artifacts"] = [{"file": name, **entry} for name, entry in record["artifacts"].items()]
    record.update({"_id": f"{task}:{version}", "aliases": [],
                   "manifest_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})
    try:
        store[MODELS].insert_one(record)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    log.info("saved %s model %s (%s, %s bytes) to %s", task, version, layout,
             sum(a["bytes"] for a in record["artifacts"]), final)
    if promote:
        _make_production(store, settings, task, version)
    return version


def _versions(store: Store, task: str) -> list[str]:
    docs = store[MODELS].find({"task": task}, {"version": 1}, sort=[("created_at", -1), ("version", -1)])
    return [d["version"] for d in docs]


def _unknown(store: Store, task: str, version: str) -> ModelError:
    known = _versions(store, task)
    if not known:
        return ModelError(f"no model for task {task!r} in the registry; train one with `custscore train --task {task}`")
    shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
    if VERSION_RE.match(version):
        return ModelError(f"task {task!r} has no version {version!r}; known versions: {shown}")
    return ModelError(f"task {task!r} has no {version!r} model; promote one with `custscore promote {task} VERSION` "
                      f"(known versions: {shown})")


def resolve_version(store: Store, task: str, version: str) -> str:
    """The full version meant by a full version, an unambiguous prefix or ``latest``; aliases pass through.

    Parameters
    ----------
    store : Store
        The registry.
    task : str
        The task whose versions are searched.
    version : str
        ``20261202-013522-4968ac``, a prefix of it such as ``20261202-0135``, ``latest`` (the newest), or an alias.

    Returns
    -------
    str
        The full version (or the alias unchanged).

    Raises
    ------
    ModelError
        No version of the task starts with the prefix, or several do (the message lists them).
    """
    if version == LATEST:
        known = _versions(store, task)
        if not known:
            raise _unknown(store, task, version)
        return known[0]
    if VERSION_RE.match(version) or not version[:1].isdigit():
        return version
    matches = [v for v in _versions(store, task) if v.startswith(version)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise _unknown(store, task, version)
    raise ModelError(f"version prefix {version!r} matches {len(matches)} {task} models ({', '.join(matches[:5])}); "
                     "give more characters")


def _record(store: Store, task: str, version: str) -> dict:
    """The collection entry of a version, prefix, ``latest`` or alias; ModelError naming the known versions if none."""
    version = resolve_version(store, task, version)
    if VERSION_RE.match(version):
        doc = store[MODELS].find_one({"_id": f"{task}:{version}"})
    else:
        doc = store[MODELS].find_one({"task": task, "aliases": version})
    if doc is None:
        raise _unknown(store, task, version)
    return doc


def _version_dir(settings: Settings, record: dict) -> Path:
    """The version directory a registry record names, refused unless it resolves inside the models root.

    Every value comes from the database, which another program may have written: the task and
    version must match their patterns, and the resolved path (symlinks followed) must stay under
    ``home/models/<task>/``, so a record can never make custscore read or deserialise a file elsewhere.
    """
    task, version = str(record.get("task")), str(record.get("version"))
    if not VERSION_RE.match(version):
        raise ArtifactIntegrityError(f"registry record {record.get('_id')!r} has an unsafe version {version[:80]!r}; "
                                     "it is not loaded (versions look like 20240531-140300-0a1b2c)")
    root = _task_dir(settings, task).resolve()
    directory = (root / version).resolve()
    if directory.parent != root:
        raise ArtifactIntegrityError(f"model {task} {version}: its folder resolves to {directory}, outside {root} "
                                     "(a symlink?); it is not loaded")
    return directory


def _inside(directory: Path, name: str, where: str) -> Path:
    """``directory / name``, refused unless it resolves (symlinks followed) to a file directly inside ``directory``."""
    file = (directory / str(name)).resolve()
    if file.parent != directory:
        raise ArtifactIntegrityError(f"{where}: artifact {str(name)[:80]!r} resolves outside {directory}; "
                                     "it is not loaded")
    return file


def _verify(settings: Settings, record: dict) -> dict:
    """Check manifest and artifacts of a version against its record; return the manifest."""
    task, version = record["task"], record["version"]
    directory = _version_dir(settings, record)
    where = f"model {task} {version}"
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactIntegrityError(f"{where}: {path} is missing; {_fix(task)}")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != record.get("manifest_sha256"):
        raise ArtifactIntegrityError(f"{where}: {path} does not match the registry record (changed or swapped); "
                                     f"{_fix(task)}")
    manifest = json.loads(raw)
    recorded = {a["file"]: {k: v for k, v in a.items() if k != "file"} for a in record.get("artifacts", [])}
    if manifest.get("task") != task or manifest.get("version") != version or manifest.get("artifacts") != recorded:
        raise ArtifactIntegrityError(f"{where}: {path} disagrees with the registry record; {_fix(task)}")
    for name, entry in manifest["artifacts"].items():
        file = _inside(directory, name, where)
        if not file.is_file():
            raise ArtifactIntegrityError(f"{where}: artifact {file} is missing; {_fix(task)}")
        if file.stat().st_size != entry["bytes"] or artifacts.sha256_file(file) != entry["sha256"]:
            raise ArtifactIntegrityError(f"{where}: artifact {file} does not match its SHA-256 in the manifest "
                                         f"(changed or swapped); {_fix(task)}")
    return manifest


def verify_model(store: Store, settings: Settings, task: str, version: str = PRODUCTION) -> dict:
    """Check a model's files against its manifest and the registry without loading it; return the manifest."""
    record = _record(store, task, version)
    fetch_artifacts(store, Path(settings.home) / "models", record)
    return _verify(settings, record)


def load_model(store: Store, settings: Settings, task: str, version: str = PRODUCTION) -> LoadedModel:
    """Verify and load one model.

    Parameters
    ----------
    store, settings
        The registry.
    task : str
        The task name.
    version : str
        A version string or an alias (``production``).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        Unknown task, version or alias.
    ArtifactIntegrityError
        A file is missing, changed, swapped or unsafe; nothing is loaded.
    """
    record = _record(store, task, version)
    fetch_artifacts(store, Path(settings.home) / "models", record)
    manifest = _verify(settings, record)
    version = record["version"]
    current = library_versions()
    for name in ("sklearn", "xgboost", "keras", "skops"):
        saved = manifest.get("libraries", {}).get(name)
        if saved and current.get(name) and saved != current[name]:
            log.warning("model %s %s was saved with %s %s, running %s", task, version, name, saved, current[name])
    directory = _version_dir(settings, record)
    for name in artifacts.LAYOUT_FILES.values():  # what the layout opens, symlinks included
        if (directory / name).exists():
            _inside(directory, name, f"model {task} {version}")
    try:
        pipeline = artifacts.load(directory, manifest["layout"])
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"model {task} {version} in {directory} cannot be rebuilt ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); {_fix(task)}") from exc
    log.info("loaded %s model %s (%s)", task, version, manifest["layout"])
    pipeline = calibration.wrap(pipeline, (manifest.get("extra") or {}).get("calibration"))  # calibrated predict_proba
    return LoadedModel(pipeline=pipeline, manifest=manifest, version=version, task=task)


def promote(store: Store, settings: Settings, task: str, version: str) -> str:
    """Make ``version`` (full, an unambiguous prefix or ``latest``) the task's only ``production`` model.

    Its files are verified first. Returns the full version promoted.
    """
    return _make_production(store, settings, task, version)


def _make_production(store: Store, settings: Settings, task: str, version: str) -> str:
    """The body of :func:`promote`, callable from :func:`save_model`, whose ``promote`` flag shadows the name."""
    version = resolve_version(store, task, version)
    if not VERSION_RE.match(version):
        raise _unknown(store, task, version)
    record = _record(store, task, version)
    fetch_artifacts(store, Path(settings.home) / "models", record)
    _verify(settings, record)
    coll = store[MODELS]
    with store.transaction():
        for doc in coll.find({"task": task, "aliases": PRODUCTION}):
            if doc["_id"] != record["_id"]:
                coll.update_one({"_id": doc["_id"]},
                                {"$set": {"aliases": [a for a in doc["aliases"] if a != PRODUCTION]}})
        aliases = [a for a in record.get("aliases", []) if a != PRODUCTION] + [PRODUCTION]
        promoted = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        coll.update_one({"_id": record["_id"]}, {"$set": {"aliases": aliases, "promoted_at": promoted}})
    log.info("promoted %s model %s to production", task, version)
    return version


def production_version(store: Store, task: str) -> str | None:
    """The version carrying the ``production`` alias for ``task``, or None."""
    doc = store[MODELS].find_one({"task": task, "aliases": PRODUCTION})
    return doc["version"] if doc else None


def is_winner(model: str, winner: str | None) -> bool:
    """Whether a stored leaderboard row is the registered winner.

    The segment winner is registered as "decision tree over K-Means" while its row reads "decision tree (assigns new
    customers)"; every other task's row carries the winner's name as is.
    """
    if not winner:
        return False
    return model == winner or (winner.startswith("decision tree") and model.startswith("decision tree"))


def model_record(store: Store, task: str, version: str = PRODUCTION) -> dict:
    """The registry entry of a version (full, prefix, ``latest`` or alias): the manifest with its ``extra``
    (winner, leaderboard, notes, curves, drift reference), ``aliases`` and ``artifacts``; ModelError if none."""
    return _record(store, task, version)


def production_records(store: Store) -> list[dict]:
    """The registry entry of every task's production model, by task name."""
    return sorted(store[MODELS].find({"aliases": PRODUCTION}), key=lambda d: str(d.get("task")))


def figure_files(settings: Settings, record: dict) -> list[Path]:
    """The PNG figures training filed beside a version (``<version>/figures/``), by name; empty when none are
    on this machine (figures stay where the model was trained; the database keeps only the artifacts)."""
    folder = _version_dir(settings, record) / "figures"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def _primary(kind: str, metrics: dict) -> dict:
    names = PRIMARY.get(kind, ())
    return {k: v for k, v in metrics.items() if any(k == n or k.endswith(f"_{n}") for n in names)}


def primary_metric(kind: str, metrics: dict) -> tuple[str | None, float | None, float | None]:
    """The kind's primary metric and its validation and test values (segment: its value on all data as "val")."""
    for name in PRIMARY.get(kind, ()):
        val, test = metrics.get(f"val_{name}"), metrics.get(f"test_{name}")
        if val is None and test is None:
            val = metrics.get(name)
        if val is not None or test is not None:
            return name, val, test
    return None, None, None


def list_models(store: Store, task: str | None = None) -> list[dict]:
    """Registry entries, newest first: task, version, created_at, kind, family (the winner), metrics, primary,
    primary_metric / val / test, threshold, aliases, bytes."""
    docs = store[MODELS].find({} if task is None else {"task": task},
                              sort=[("created_at", -1), ("version", -1)])
    return [{"task": d["task"], "version": d["version"], "created_at": d["created_at"], "kind": d.get("kind"),
             "metrics": d.get("metrics", {}), "primary": _primary(d.get("kind", ""), d.get("metrics", {})),
             "threshold": d.get("threshold"), "aliases": d.get("aliases", []), "layout": d.get("layout"),
             "artifact_bytes": sum(a.get("bytes", 0) for a in d.get("artifacts", [])),
             "family": (d.get("extra") or {}).get("winner"),
             **dict(zip(("primary_metric", "val", "test"), primary_metric(d.get("kind", ""), d.get("metrics", {})),
                        strict=True))} for d in docs]
