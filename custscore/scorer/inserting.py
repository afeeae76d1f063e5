"""Inserting customers to be scored, and waiting until the scorer has scored them.

``custscore insert FILE|-`` reads JSON (an array, one object, or JSON lines),
stores the documents through the same validated loader as ``ingest`` and,
with ``--wait``, waits for the worker's ``score`` (or scores inline when no
worker is running).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from custscore.errors import CustscoreError, InputError
from custscore.scorer import state
from custscore.scorer.writeback import doc_hash as document_hash
from custscore.store.base import Store
from custscore.store.loading import LoadReport, load_customers
from custscore.store.schema import CUSTOMERS

log = logging.getLogger(__name__)

DEFAULT_POLL = (0.05, 0.5)  # first and longest pause between store reads, seconds
EXAMPLE = '[{"customer_id": "C1", "signup_date": "2024-05-31", "age": 41}]'


def read_documents(source: str | Path | TextIO) -> list[dict]:
    """Customer documents from a JSON array, a single JSON object, or JSON lines.

    Parameters
    ----------
    source : str, Path or text stream
        A file path, ``"-"`` for standard input, or an open text stream.

    Returns
    -------
    list of dict
        The documents in file order (not yet validated: dates may be ISO text).

    Raises
    ------
    InputError
        The file is missing, empty, or holds text that is not JSON (the message
        names the line).
    """
    name, text = _read_text(source)
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{name} holds no documents; give a JSON array, one object or JSON lines such as {EXAMPLE}")
    if stripped[0] in "[{":
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError as exc:
            if stripped[0] == "[":  # an array cannot be JSON lines: report where it breaks
                raise InputError(
                    f"{name} line {exc.lineno} column {exc.colno} is not valid JSON ({exc.msg}); fix it or "
                    "write one document per line"
                ) from exc
        else:
            return whole if isinstance(whole, list) else [whole]
    return _json_lines(name, text)


def _read_text(source: str | Path | TextIO) -> tuple[str, str]:
    if hasattr(source, "read"):
        name = "stdin" if source is sys.stdin else str(getattr(source, "name", "input"))
        return name, source.read()
    if str(source) == "-":
        return "stdin", sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise InputError(f"file {str(path)!r} does not exist; give the path of a JSON or JSON-lines file, or - for stdin")
    try:
        return path.name, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}; give a UTF-8 JSON or JSON-lines file") from exc


def _json_lines(name: str, text: str) -> list[Any]:
    docs = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{name} line {line_no} is not valid JSON ({exc.msg} at column {exc.colno}); fix or remove the line"
            ) from exc
    return docs


def insert_customers(store: Store, docs: Iterable[Any], collect_ids: bool = False) -> LoadReport:
    """Store customer documents through the validated loader; bad ones are refused and reported.

    Parameters
    ----------
    store : Store
        Where the customers go.
    docs : iterable of dict
        Raw documents; the id is ``customer_id`` or ``_id``. Read lazily, in
        batches (give :func:`~custscore.scorer.document_stream.iter_documents`
        to stream a file); a Problem in their place is reported as it is.
    collect_ids : bool
        Fill ``report.stored_ids`` (for ``--wait``).

    Returns
    -------
    LoadReport
        Counts (inserted, updated, unchanged in ``skipped``, ``duplicates``), and each
        refused document as a Problem (1-based document number, field, reason).
    """
    return load_customers(store, (with_customer_id(d) for d in docs), start_index=1, collect_ids=collect_ids)


def summary_line(report: LoadReport) -> str:
    """What an insert did, each document counted once: ``inserted 3, updated 1, unchanged 0, ...``."""
    return (f"inserted {report.inserted:,}, updated {report.updated:,}, unchanged {report.skipped:,}, "
            f"duplicate ids {report.duplicates:,}, refused {report.rejected:,}")


def with_customer_id(doc: Any) -> Any:
    """A raw customer document whose id is given as ``_id`` only, with ``customer_id`` set from it."""
    if isinstance(doc, dict) and doc.get("customer_id") is None and doc.get("_id") is not None:
        return {**doc, "customer_id": doc["_id"]}
    return doc


def is_scored(doc: dict) -> bool:
    """True when the document carries a score computed from its current content."""
    score = doc.get("score")
    return isinstance(score, dict) and score.get("doc_hash") == document_hash(doc)


def wait_for_scores(
    store: Store,
    ids: Sequence[str],
    timeout_s: float = 60,
    inline: Callable[[list[str]], Any] | None = None,
    poll: tuple[float, float] = DEFAULT_POLL,
) -> list[dict]:
    """Wait until every customer in ``ids`` has a score for its current document, and return the documents.

    Parameters
    ----------
    store : Store
        The store the worker writes to.
    ids : sequence of str
        Customer ids, e.g. the ones just inserted.
    timeout_s : float
        Give up after this many seconds.
    inline : callable, optional
        ``inline(ids)`` scores the given customers through the worker's code; used
        instead of waiting when no worker is alive.
    poll : (float, float)
        First and longest pause between reads of the store; the pause grows
        between them, so a fast worker is noticed within ~50 ms.

    Returns
    -------
    list of dict
        The customers' documents, in the order of ``ids``.

    Raises
    ------
    InputError
        An id is not in the store.
    CustscoreError
        Some customers are still unscored after ``timeout_s`` (or after inline scoring).
    """
    wanted = list(dict.fromkeys(ids))
    coll = store.collection(CUSTOMERS)
    done: dict[str, dict] = {}
    first_pause, longest_pause = poll
    pause = first_pause
    deadline = time.monotonic() + timeout_s
    first_read = True
    while True:
        pending = [i for i in wanted if i not in done]
        docs = {d["_id"]: d for d in coll.find({"_id": {"$in": pending}})}
        if first_read:
            missing = [i for i in pending if i not in docs]
            if missing:
                raise InputError(
                    f"customer {missing[0]!r} is not in the store ({len(missing)} missing); insert it before waiting"
                )
            first_read = False
        done.update({i: d for i, d in docs.items() if is_scored(d)})
        pending = [i for i in wanted if i not in done]
        if not pending:
            return [done[i] for i in wanted]
        if inline is not None and not state.worker_alive(store):
            return _score_inline(store, wanted, pending, done, inline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CustscoreError(
                f"{len(pending)} of {len(wanted)} customers are still unscored after {timeout_s:g} s "
                f"(first: {pending[0]!r}); start a worker: custscore score --watch"
            )
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, longest_pause)


def _score_inline(
    store: Store, wanted: list[str], pending: list[str], done: dict[str, dict], inline: Callable[[list[str]], Any]
) -> list[dict]:
    log.info("no scorer worker is running; scoring %d customers inline", len(pending))
    inline(pending)
    docs = {d["_id"]: d for d in store.collection(CUSTOMERS).find({"_id": {"$in": pending}})}
    done.update({i: d for i, d in docs.items() if is_scored(d)})
    still = [i for i in wanted if i not in done]
    if still:
        raise CustscoreError(
            f"{len(still)} of {len(wanted)} customers could not be scored inline (first: {still[0]!r}); "
            "see why with: custscore dead-letters"
        )
    return [done[i] for i in wanted]
