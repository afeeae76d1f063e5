"""Content-addressed binary blobs in the database: GridFS on MongoDB, a chunk collection elsewhere.

The model registry keeps every artifact here, keyed by its SHA-256, so a worker
anywhere needs only the database URI; the local models folder is a cache.

Both implementations have one surface (:class:`Blobs`): ``put(data)`` returns the
SHA-256 and is idempotent (a blob already stored is not written again),
``get(sha)`` returns the bytes and checks them against the key before returning,
``exists(sha)`` and ``delete(sha)``. Chunks are 1 MiB, well below MongoDB's
16 MB document limit, so a model of any size fits.
"""

from __future__ import annotations

import abc
import hashlib
import re
from typing import Any

from custscore.errors import ArtifactIntegrityError, StoreError
from custscore.store.base import InsertOne, Store

BLOBS = "model_blobs"  # the chunk collection (embedded) or the GridFS bucket name (MongoDB)
CHUNK_BYTES = 1 << 20
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _check_key(sha: str) -> str:
    if not isinstance(sha, str) or not SHA_RE.match(sha):
        raise ArtifactIntegrityError(f"blob key {str(sha)[:80]!r} is not a SHA-256 (64 lowercase hex digits)")
    return sha


class Blobs(abc.ABC):
    """Blobs keyed by the SHA-256 of their bytes."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its SHA-256."""
        sha = sha256_bytes(data)
        if not self.exists(sha):
            self._write(sha, bytes(data))
        return sha

    def get(self, sha: str) -> bytes:
        """The bytes stored under ``sha``, verified against it.

        Raises
        ------
        ArtifactIntegrityError
            Nothing is stored under ``sha``, or what is stored does not hash to it.
        """
        data = self._read(_check_key(sha))
        if data is None:
            raise ArtifactIntegrityError(f"blob {sha[:12]}… is not in the database")
        if sha256_bytes(data) != sha:
            raise ArtifactIntegrityError(f"blob {sha[:12]}… in the database does not match its SHA-256 "
                                         "(changed or corrupted); it is not loaded")
        return data

    @abc.abstractmethod
    def exists(self, sha: str) -> bool:
        """Whether a blob is stored under ``sha``."""

    @abc.abstractmethod
    def delete(self, sha: str) -> None:
        """Remove the blob (no error if absent)."""

    @abc.abstractmethod
    def _write(self, sha: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def _read(self, sha: str) -> bytes | None: ...


class ChunkBlobs(Blobs):
    """Blobs as 1 MiB chunk documents in one collection; the head document is written last.

    A reader sees a blob only once its head (``_id`` = the SHA-256) exists, and
    the head is inserted after every chunk, in one transaction where the store
    has them, so a crash never leaves a readable half blob.
    """

    def __init__(self, store: Store, collection: str = BLOBS):
        self.store = store
        self.coll = store.collection(collection)
        if "sha256" not in self.coll.index_fields():
            self.coll.create_index("sha256")

    def exists(self, sha: str) -> bool:
        return self.coll.find_one({"_id": _check_key(sha)}, projection={"_id": 1}) is not None

    def delete(self, sha: str) -> None:
        with self.store.transaction():
            self.coll.delete_many({"sha256": _check_key(sha)})
            self.coll.delete_one({"_id": sha})

    def _write(self, sha: str, data: bytes) -> None:
        count = max(1, -(-len(data) // CHUNK_BYTES))
        ops = [InsertOne({"_id": f"{sha}:{n:06d}", "sha256": sha, "n": n,
                          "data": data[n * CHUNK_BYTES:(n + 1) * CHUNK_BYTES]}) for n in range(count)]
        with self.store.transaction():
            self.coll.delete_many({"sha256": sha})  # leftovers of an interrupted write without transactions
            for start in range(0, len(ops), 8):
                self.coll.bulk_write(ops[start:start + 8])
            self.coll.insert_one({"_id": sha, "length": len(data), "chunks": count})

    def _read(self, sha: str) -> bytes | None:
        head = self.coll.find_one({"_id": sha})
        if head is None:
            return None
        parts = []
        for n in range(int(head.get("chunks", 0))):
            chunk = self.coll.find_one({"_id": f"{sha}:{n:06d}"})
            if chunk is None:
                raise ArtifactIntegrityError(f"blob {sha[:12]}… is missing chunk {n} in the database")
            parts.append(bytes(chunk["data"]))
        return b"".join(parts)


class GridFSBlobs(Blobs):
    """Blobs in a GridFS bucket (MongoDB), one file per SHA-256 (its filename)."""

    def __init__(self, database: Any, bucket: str = BLOBS):
        import gridfs

        self.bucket = gridfs.GridFSBucket(database, bucket_name=bucket, chunk_size_bytes=CHUNK_BYTES)
        self.files = database[f"{bucket}.files"]

    def exists(self, sha: str) -> bool:
        return self.files.find_one({"filename": _check_key(sha)}, {"_id": 1}) is not None

    def delete(self, sha: str) -> None:
        for doc in list(self.files.find({"filename": _check_key(sha)}, {"_id": 1})):
            self.bucket.delete(doc["_id"])

    def _write(self, sha: str, data: bytes) -> None:
        self.bucket.upload_from_stream(sha, data, metadata={"sha256": sha})

    def _read(self, sha: str) -> bytes | None:
        import gridfs

        try:
            return self.bucket.open_download_stream_by_name(sha).read()
        except gridfs.errors.NoFile:
            return None
        except Exception as exc:  # pymongo errors: the database, not the blob, is at fault
            raise StoreError(f"reading blob {sha[:12]}… from GridFS failed: {type(exc).__name__}") from exc


def open_blobs(store: Store) -> Blobs:
    """The blob store of ``store``: GridFS on MongoDB, chunk documents on the embedded and memory stores."""
    database = getattr(store, "db", None)
    if store.backend == "mongodb" and database is not None and type(database).__module__.startswith("pymongo"):
        return GridFSBlobs(database)
    return ChunkBlobs(store)
