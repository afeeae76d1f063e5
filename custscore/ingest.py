"""Bring your own data: CSV, Parquet or JSON-lines files into customers or events.

Columns are renamed with ``--map SOURCE=FIELD``, dates parsed (ISO 8601 by
default, ``--date-format`` otherwise), and every record goes through the same
validation as simulated data (store/validation.py), so a user's data works
everywhere simulated data works.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.loading import LoadReport, load_customers, load_events
from custscore.store.validation import CUSTOMER_SCHEMA, EVENT_SCHEMA

log = logging.getLogger(__name__)
KINDS = {"customers": (CUSTOMER_SCHEMA, load_customers), "events": (EVENT_SCHEMA, load_events)}
DATE_FIELDS = {"signup_date", "ts"}
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
CHUNK_ROWS = 5000


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """``["src=field", ...]`` -> ``{"src": "field"}`` with a clear error on a malformed item."""
    mapping = {}
    for item in items or []:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InputError(f"--map {item!r} is not SOURCE=FIELD; write e.g. --map cust_no=customer_id")
        mapping[source.strip()] = target.strip()
    return mapping


def _frames(path: Path, fmt: str) -> Iterator[pd.DataFrame]:
    if fmt == "csv":
        # everything as text: ids keep leading zeros, and validation reports bad numbers per row
        yield from pd.read_csv(path, dtype=str, chunksize=CHUNK_ROWS, skipinitialspace=True)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
            yield batch.to_pandas()
    else:
        rows: list[dict] = []
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path.name} line {line_no} is not valid JSON ({exc.msg}); fix or remove it") from exc
                if len(rows) == CHUNK_ROWS:
                    yield pd.DataFrame.from_records(rows)
                    rows = []
        if rows:
            yield pd.DataFrame.from_records(rows)


def _date_parser(date_format: str | None) -> Callable:
    def parse(value):
        if not isinstance(value, str) or date_format is None:
            return value
        try:
            return dt.datetime.strptime(value.strip(), date_format)
        except ValueError:
            return value  # validation names the field and value

    return parse


def check_file(path: Path) -> str:
    """The format of an input file ("csv", "parquet", "jsonl"); InputError if it is missing or of unknown type."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file {str(path)!r} does not exist; give the path of a CSV, Parquet or JSON-lines file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format of {path.name!r}; use a .csv, .parquet or .jsonl file")
    return fmt


def read_records(path: Path, kind: str, mapping: dict[str, str], date_format: str | None = None) -> Iterator[dict]:
    """Records of a file with columns renamed, checked for the required fields up front."""
    fmt = check_file(path)
    schema = KINDS[kind][0]
    parse_date = _date_parser(date_format)
    checked = False
    try:
        for frame in _frames(path, fmt):
            if not checked:
                unknown = [s for s in mapping if s not in frame.columns]
                if unknown:
                    raise InputError(
                        f"--map names column {unknown[0]!r}, which {path.name} does not have "
                        f"(columns: {', '.join(map(str, frame.columns))})"
                    )
                columns = {mapping.get(c, c) for c in frame.columns}
                for name, (required, _check) in schema.items():
                    if required and name not in columns:
                        raise InputError(
                            f"{kind} file {path.name} has no {name!r} column; map one with --map SOURCE={name} "
                            f"(columns: {', '.join(map(str, frame.columns))})"
                        )
                checked = True
            frame = frame.rename(columns=mapping)
            for name in DATE_FIELDS & set(frame.columns):
                frame[name] = frame[name].map(parse_date)
            frame = frame.astype(object).where(frame.notna(), None)
            yield from frame.to_dict(orient="records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}") from exc


def ingest_file(
    store: Store,
    kind: str,
    path: Path,
    mapping: dict[str, str] | None = None,
    date_format: str | None = None,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Load a file of customers or events; good records are stored, bad ones reported by row (1-based)."""
    if kind not in KINDS:
        raise InputError(f"cannot ingest {kind!r}; choose customers or events")
    records = read_records(Path(path), kind, mapping or {}, date_format)
    return KINDS[kind][1](store, records, batch_size=batch_size, start_index=1, on_progress=on_progress)
