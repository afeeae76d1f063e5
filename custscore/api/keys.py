"""API keys: created once and shown once, stored only as their SHA-256, revocable by name.

A key is ``cs_`` followed by 43 URL-safe random characters (256 bits), so a
plain SHA-256 is enough to store it: there is nothing to brute-force that a
salt would protect. ``check_key`` is one indexed lookup per request, so a
revocation takes effect at the next request of every server on the store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from custscore.clock import now as wall_clock
from custscore.errors import InputError
from custscore.store.base import Store

API_KEYS = "api_keys"
PREFIX = "cs_"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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


def check_key(store: Store, presented: str | None) -> str | None:
    """The name of the live key ``presented`` is, or None."""
    if not presented or not presented.startswith(PREFIX) or len(presented) > 200:
        return None
    digest = _digest(presented)
    doc = store.collection(API_KEYS).find_one({"sha256": digest})
    if doc is None or doc.get("revoked") or not hmac.compare_digest(doc.get("sha256", ""), digest):
        return None
    return str(doc["_id"])
