"""Scores as rows for a file (``custscore predict --out FILE``): CSV or JSON lines, one row per customer.

The suffix picks the format: ``.csv`` gives flat columns (the score fields,
the model versions as ``version_<task>`` and each task's reasons as one
``reasons_<task>`` cell, sentences joined with ``"; "``, and the
recommendations as one cell of ``"product: reason"`` joined the same way); ``.jsonl`` /
``.ndjson`` gives one JSON object per customer with the reasons per task as
lists of ``{feature, value, contribution, sentence}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from custscore.errors import InputError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_INTERNAL = ("model_versions", "models_key", "reasons", "reasons_task")


def score_file_format(path: Path | str) -> str:
    """``"csv"`` or ``"jsonl"`` from the suffix of ``path``.

    Raises
    ------
    InputError
        The suffix is neither ``.csv``, ``.jsonl`` nor ``.ndjson`` (checked before anything is scored).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"--out {str(path)!r}: unknown suffix {suffix or '(none)'!r}; "
                         "use .csv or .jsonl, e.g. --out scores.csv")
    return FORMATS[suffix]


def score_records(scores: Sequence[Any], flat: bool) -> list[dict]:
    """One dict per scored customer: its id, the score fields, model versions and reasons per task."""
    records = []
    for s in scores:
        row: dict[str, Any] = {"customer_id": s.customer_id}
        row.update({k: v for k, v in s.score.items() if k not in _INTERNAL})
        versions = s.score.get("model_versions") or {}
        reasons = s.reasons_by_task or {s.score.get("reasons_task") or "churn": s.score.get("reasons") or []}
        if flat:
            if isinstance(row.get("recommendations"), list):
                row["recommendations"] = "; ".join(f"{r.get('product_id')}: {r.get('reason')}"
                                                   for r in row["recommendations"])
            row.update({f"version_{task}": v for task, v in sorted(versions.items())})
            row.update({f"reasons_{task}": "; ".join(r["sentence"] for r in rs) for task, rs in reasons.items()})
        else:
            row["model_versions"] = dict(versions)
            row["reasons"] = {task: [{k: r.get(k) for k in ("feature", "value", "contribution", "sentence")}
                                     for r in rs] for task, rs in reasons.items()}
        records.append(row)
    return records
