"""Move registered models between stores: ``export_model`` writes one zip, ``import_model`` verifies and stores it.

The zip holds ``record.json`` (the ``models`` collection entry, aliases dropped)
and ``blobs/<sha256>`` for ``manifest.json`` and each artifact. Import reads it in
memory with size limits, checks every blob against its name, the manifest blob
against the record's ``manifest_sha256`` and the manifest's artifact list against
the record, and only then writes blobs and record. An imported model is never
promoted by the import: ``custscore promote`` does that, verifying again.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

from custscore.errors import ArtifactIntegrityError, InputError, ModelError
from custscore.models.registry import LATEST
from custscore.store.base import Store
from custscore.store.blobs import open_blobs, sha256_bytes
from custscore.store.schema import MODELS

log = logging.getLogger(__name__)

RECORD = "record.json"
MAX_MEMBER_BYTES = 2 << 30  # 2 GiB: far above any model custscore trains, a bound on a hostile zip
MAX_MEMBERS = 1000
BLOB_NAME = re.compile(r"^blobs/([0-9a-f]{64})$")
RECORD_KEYS = ("task", "version", "kind", "artifacts", "manifest_sha256")


def find_record(store: Store, version: str, task: str | None = None) -> dict:
    """The registry entry of ``version`` (a full version, an unambiguous prefix or ``latest``), optionally in ``task``."""
    query: dict = {} if task is None else {"task": task}
    if version == LATEST:
        newest = list(store[MODELS].find(query, sort=[("created_at", -1), ("version", -1)], limit=1))
        if not newest:
            raise ModelError("no registered model yet; train one with `custscore train --task all`")
        return newest[0]
    docs = [d for d in store[MODELS].find(query) if str(d.get("version", "")).startswith(version)] if version else []
    exact = [d for d in docs if d.get("version") == version]
    docs = exact or docs
    if not docs:
        raise ModelError(f"no registered model has version {version!r}; list them with `custscore models`")
    if len(docs) > 1:
        names = ", ".join(sorted(f"{d['task']} {d['version']}" for d in docs)[:5])
        raise ModelError(f"version {version!r} is ambiguous ({names}); give the full version or --task")
    return docs[0]


def export_model(store: Store, version: str, path: Path, task: str | None = None) -> dict:
    """Write the model ``version`` with all its blobs to the zip file ``path``; return its record."""
    record = find_record(store, version, task)
    blobs = open_blobs(store)
    shas = [record["manifest_sha256"]] + [a["sha256"] for a in record.get("artifacts", [])]
    clean = {k: v for k, v in record.items() if k not in ("aliases", "promoted_at")}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(RECORD, json.dumps(clean, indent=2, default=str))
            for sha in dict.fromkeys(shas):
                zf.writestr(f"blobs/{sha}", blobs.get(sha))
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; choose a writable FILE") from exc
    log.info("exported %s %s to %s", record["task"], record["version"], path)
    return clean


def _read_zip(path: Path) -> tuple[dict, dict[str, bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} is not a custscore model export (zip): {exc}; "
                         "make one with `custscore models export VERSION FILE`") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InputError(f"{path} has {len(infos)} entries; a model export has at most {MAX_MEMBERS}")
        record, blobs = None, {}
        for info in infos:
            if info.file_size > MAX_MEMBER_BYTES:
                raise InputError(f"{path}: entry {info.filename[:80]!r} is {info.file_size:,} bytes, over the limit")
            if info.filename == RECORD:
                try:
                    record = json.loads(zf.read(info))
                except ValueError as exc:
                    raise InputError(f"{path}: {RECORD} is not valid JSON ({exc})") from exc
            elif (m := BLOB_NAME.match(info.filename)) is not None:
                blobs[m.group(1)] = zf.read(info)
            else:
                raise InputError(f"{path}: unexpected entry {info.filename[:80]!r}; this is not a model export")
    if not isinstance(record, dict) or any(k not in record for k in RECORD_KEYS):
        raise InputError(f"{path} has no usable {RECORD}; make one with `custscore models export VERSION FILE`")
    return record, blobs


def import_model(store: Store, path: Path) -> dict:
    """Verify the export at ``path`` and register it in ``store`` (not promoted); return its record.

    Raises
    ------
    InputError
        The file is not a model export.
    ArtifactIntegrityError
        A blob does not match its SHA-256, or the manifest disagrees with the record.
    ModelError
        That task and version are already registered.
    """
    record, blobs = _read_zip(Path(path))
    task, version = str(record["task"]), str(record["version"])
    for sha, data in blobs.items():
        if sha256_bytes(data) != sha:
            raise ArtifactIntegrityError(f"{path}: blob {sha[:12]}… does not match its SHA-256; nothing imported")
    manifest_raw = blobs.get(record["manifest_sha256"])
    if manifest_raw is None:
        raise ArtifactIntegrityError(f"{path}: the manifest of {task} {version} is missing; nothing imported")
    manifest = json.loads(manifest_raw)
    recorded = {a["file"]: {k: v for k, v in a.items() if k != "file"} for a in record["artifacts"]}
    if manifest.get("task") != task or manifest.get("version") != version or manifest.get("artifacts") != recorded:
        raise ArtifactIntegrityError(f"{path}: the manifest disagrees with the record of {task} {version}; "
                                     "nothing imported")
    missing = [a["file"] for a in record["artifacts"] if a["sha256"] not in blobs]
    if missing:
        raise ArtifactIntegrityError(f"{path}: artifacts {', '.join(missing)} are missing; nothing imported")
    if store[MODELS].find_one({"_id": f"{task}:{version}"}) is not None:
        raise ModelError(f"model {task} {version} is already registered in this store")
    store_blobs = open_blobs(store)
    for data in blobs.values():
        store_blobs.put(data)
    entry = {**record, "_id": f"{task}:{version}", "aliases": []}
    store[MODELS].insert_one(entry)
    log.info("imported %s %s from %s", task, version, path)
    return entry
