"""The registry's artifacts live in the database; the local models folder is a verified cache of them.

``upload_artifacts`` puts every file of a new version directory (the artifacts
and ``manifest.json``) into the store's blob store (:mod:`custscore.store.blobs`,
GridFS on MongoDB), keyed by SHA-256, before the registry record is written.
``fetch_artifacts`` fills in whatever a version directory lacks from those blobs,
each checked against the SHA-256 the registry record holds before it is written
to disk; the registry then verifies the directory as it always has, before
anything is deserialised. So a worker started with an empty home on the same
store loads models trained anywhere else, and a tampered blob never reaches disk.

A file already in the cache is left alone: if it differs from the record, the
registry's verification refuses it (someone changed the cache; that should be
seen, not silently repaired).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

from custscore.errors import ArtifactIntegrityError
from custscore.store.base import Store
from custscore.store.blobs import open_blobs, sha256_bytes

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def upload_artifacts(store: Store, directory: Path) -> dict[str, str]:
    """Store every file of ``directory`` as a blob; return file name -> SHA-256."""
    blobs = open_blobs(store)
    out = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            out[path.name] = blobs.put(path.read_bytes())
    return out


def _safe_name(value: object, what: str) -> str:
    text = str(value)
    if not NAME_RE.match(text) or ".." in text:
        raise ArtifactIntegrityError(f"registry record has an unsafe {what} {text[:80]!r}; it is not loaded")
    return text


def _wanted(record: dict) -> dict[str, str]:
    """file name -> SHA-256 of everything a version directory must hold, from the registry record."""
    wanted = {MANIFEST: record.get("manifest_sha256")}
    for entry in record.get("artifacts") or []:
        wanted[_safe_name(entry.get("file"), "artifact name")] = entry.get("sha256")
    return wanted


def version_directory(root: Path, record: dict) -> Path:
    """``root/<task>/<version>`` for a registry record, refusing names that could leave ``root``."""
    task = _safe_name(record.get("task"), "task")
    version = _safe_name(record.get("version"), "version")
    base = Path(root).resolve()
    directory = (base / task / version).resolve()
    if base not in directory.parents:
        raise ArtifactIntegrityError(f"registry record {task}:{version} points outside {base}; it is not loaded")
    return directory


def fetch_artifacts(store: Store, root: Path, record: dict) -> int:
    """Write the files missing from the record's version directory under ``root`` from the database.

    Returns
    -------
    int
        How many files were fetched (0 when the cache already had them all).

    Raises
    ------
    ArtifactIntegrityError
        A blob is missing from the database or does not match the record's SHA-256.
    """
    directory = version_directory(root, record)
    missing = {name: sha for name, sha in _wanted(record).items() if not (directory / name).is_file()}
    if not missing:
        return 0
    blobs = open_blobs(store)
    if not all(sha and blobs.exists(str(sha)) for sha in missing.values()):
        return 0  # saved before artifacts went into the database: the folder is the only copy
    directory.mkdir(parents=True, exist_ok=True)
    for name, sha in missing.items():
        data = blobs.get(str(sha))  # verified against the key
        if sha256_bytes(data) != sha:
            raise ArtifactIntegrityError(f"blob for {name} does not match the registry record; it is not loaded")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, directory / name)
    log.info("fetched %d artifact(s) of %s %s from the database", len(missing), record.get("task"),
             record.get("version"))
    return len(missing)
