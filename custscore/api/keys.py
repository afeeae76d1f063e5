"""API keys: created once and shown once, stored only as their SHA-256, revocable by name.

A key is ``cs_`` followed by 43 URL-safe random characters (256 bits), so a
plain SHA-256 is enough to store it: there is nothing to brute-force that a
salt would protect. ``check_key`` is one indexed lookup, so a revocation takes
effect at the next request of every server on the store.

A server checks keys through a :class:`KeyGate`: a key it has not seen live is
looked up at once (so an unknown key is refused before its body is read); a key
it has seen live is re-checked on the scoring thread together with every other
key of the same micro-batch, in one read, before that batch is scored. Either
way the store is read for every request, and the event loop, which every
concurrent request waits on, no longer queues behind the scoring thread for the
store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Any

from custscore.clock import now as wall_clock
from custscore.errors import InputError
from custscore.store.base import Store

API_KEYS = "api_keys"
PREFIX = "cs_"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REFUSED = ("missing or invalid API key; send `Authorization: Bearer KEY` "
           "(create one with `custscore apikey create NAME`)")


class KeyRefused(Exception):
    """A request's API key is missing, unknown or revoked (HTTP 401)."""

    def __init__(self, message: str = REFUSED):
        super().__init__(message)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _collection(store: Store) -> Any:
    coll = store.collection(API_KEYS)
    if "sha256" not in coll.index_fields():
        coll.create_index("sha256")
    return coll


def _check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise InputError(f"API key name {name[:80]!r} is not allowed; use 1-64 letters, digits, '_', '-' or '.'")
    return name


def create_key(store: Store, name: str) -> str:
    """Create the key ``name`` and return it; only its SHA-256 is kept, so this is the one time it is seen."""
    coll = _collection(store)
    _check_name(name)
    existing = coll.find_one({"_id": name})
    if existing is not None and not existing.get("revoked"):
        raise InputError(f"API key {name!r} already exists; revoke it first with `custscore apikey revoke {name}` "
                         "or choose another name")
    key = PREFIX + secrets.token_urlsafe(32)
    coll.replace_one({"_id": name}, {"_id": name, "sha256": _digest(key), "prefix": key[:7],
                                     "created_at": wall_clock(), "revoked": False}, upsert=True)
    return key


def revoke_key(store: Store, name: str) -> None:
    """Revoke the key ``name``; requests with it get 401 from then on."""
    coll = _collection(store)
    if coll.find_one({"_id": _check_name(name)}) is None:
        raise InputError(f"there is no API key named {name!r}; list them with `custscore apikey list`")
    coll.update_one({"_id": name}, {"$set": {"revoked": True, "revoked_at": wall_clock()}})


def list_keys(store: Store) -> list[dict]:
    """name, prefix, created_at, revoked of every key (never the key or its hash)."""
    return [{"name": d["_id"], "prefix": d.get("prefix"), "created_at": d.get("created_at"),
             "revoked": bool(d.get("revoked"))}
            for d in _collection(store).find({}, projection={"sha256": 0}, sort=[("_id", 1)])]


def _well_formed(presented: str | None) -> bool:
    return bool(presented) and presented.startswith(PREFIX) and len(presented) <= 200


def _live(doc: dict | None, digest: str) -> bool:
    return doc is not None and not doc.get("revoked") and hmac.compare_digest(doc.get("sha256", ""), digest)


def _lookup(store: Store, digest: str) -> str | None:
    doc = store.collection(API_KEYS).find_one({"sha256": digest})
    return str(doc["_id"]) if _live(doc, digest) else None


def check_key(store: Store, presented: str | None) -> str | None:
    """The name of the live key ``presented`` is, or None."""
    return _lookup(store, _digest(presented)) if _well_formed(presented) else None


class KeyGate:
    """A server's key checks: :meth:`check` now, or :meth:`admit` now and :meth:`confirm` with the batch.

    Parameters
    ----------
    store : Store
        Where the keys are (read on every request; only which digests were live is remembered).
    """

    def __init__(self, store: Store):
        self.store = store
        self._seen: set[str] = set()  # digests found live; re-checked by confirm() before every use

    def check(self, presented: str | None) -> str:
        """The digest of ``presented`` after one lookup; KeyRefused unless it is live."""
        return self._looked_up(self._digest_of(presented))

    def admit(self, presented: str | None) -> str:
        """The digest of ``presented``, which the caller must :meth:`confirm` before it acts on the request.

        A key not seen live before is looked up now (KeyRefused unless live); a seen one is left to
        :meth:`confirm`, which reads all of a batch's keys at once."""
        digest = self._digest_of(presented)
        return digest if digest in self._seen else self._looked_up(digest)

    @staticmethod
    def _digest_of(presented: str | None) -> str:
        if not _well_formed(presented):
            raise KeyRefused()
        return _digest(presented)

    def _looked_up(self, digest: str) -> str:
        if _lookup(self.store, digest) is None:
            raise KeyRefused()
        self._seen.add(digest)
        return digest

    def confirm(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` are live keys now: one read of the store, whatever their number."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        docs = self.store.collection(API_KEYS).find({"sha256": {"$in": wanted}},
                                                    projection={"sha256": 1, "revoked": 1})
        live = {d["sha256"] for d in docs if isinstance(d.get("sha256"), str) and _live(d, d["sha256"])}
        self._seen.difference_update(set(wanted) - live)
        return live
