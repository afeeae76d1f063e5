"""API keys on every backend: shown once, stored hashed, and a server's KeyGate refuses a revoked key at once."""

from __future__ import annotations

import pytest

from custscore.api.keys import API_KEYS, REFUSED, KeyGate, KeyRefused, check_key, create_key, revoke_key


def test_only_the_hash_is_stored_and_a_revoked_key_is_dead(store):
    key = create_key(store, "crm")
    doc = store.collection(API_KEYS).find_one({"_id": "crm"})
    assert key.startswith("cs_") and key not in str(doc) and doc["prefix"] == key[:7]
    assert check_key(store, key) == "crm"
    revoke_key(store, "crm")
    assert check_key(store, key) is None


def test_the_gate_confirms_a_seen_key_with_its_batch_and_forgets_it_once_revoked(store):
    live, doomed = create_key(store, "live"), create_key(store, "doomed")
    gate = KeyGate(store)
    with pytest.raises(KeyRefused, match="missing or invalid API key"):
        gate.admit("cs_never-created")
    with pytest.raises(KeyRefused) as refused:
        gate.admit(None)
    assert str(refused.value) == REFUSED
    first, second = gate.admit(live), gate.admit(doomed)  # unseen: looked up now
    assert gate.confirm([first, second, first]) == {first, second}
    revoke_key(store, "doomed")
    assert gate.admit(doomed) == second  # seen live: left to the batch's confirm, which refuses it
    assert gate.confirm([first, second]) == {first}
    with pytest.raises(KeyRefused):  # forgotten: the next request is looked up at once again
        gate.admit(doomed)
    assert gate.confirm([]) == set()
