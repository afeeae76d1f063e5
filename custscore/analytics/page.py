"""HTML assembly of the report: sections, paragraphs, tables, embedded figures and the page around them.

Everything is inline: figures are base64 PNG data URIs (each also written as a
PNG beside the page), the CSS is in the head, there are no scripts or links.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

OK, EMPTY, DEGRADED = "ok", "empty", "degraded"
TRAIN_HINT = "run custscore train"
SCORE_HINT = "run custscore score"
WINNER = "★ winner"
CSS = """body{font:14px/1.5 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #3a7;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:12px}th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f6f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
tr.winner td{font-weight:bold;background:#eaf6ee}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}.muted{color:#666}
.status{font-size:11px;padding:1px 6px;border-radius:3px;background:#eee;margin-left:.5em}"""


@dataclass
class Section:
    """One report section: heading, status (ok / empty / degraded) and its HTML body."""

    key: str
    title: str
    status: str = OK
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        """Append an HTML fragment."""
        self.parts.append(fragment)

    def empty(self, message: str) -> Section:
        """Mark the section empty with a note saying which command fills it."""
        self.status = EMPTY
        self.add(paragraph(message, "note"))
        return self


def paragraph(text: str, cls: str = "") -> str:
    """An escaped ``<p>``, with a CSS class (``note``, ``muted``) when given."""
    return f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>"


def heading(text: str) -> str:
    """An escaped ``<h3>``."""
    return f"<h3>{html.escape(text)}</h3>"


def _number(value: float) -> str:
    return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"


def table(df: pd.DataFrame, max_rows: int = 30, marked: pd.Series | None = None) -> str:
    """A DataFrame as an HTML table (the first ``max_rows`` rows); rows where ``marked`` is true are highlighted."""
    shown = df.head(max_rows)
    out = shown.to_html(index=False, border=0, na_rep="—", float_format=_number)
    if marked is not None:  # pandas writes one "<tr>" per body row, in order
        head, sep, body = out.partition("<tbody>")
        rows = body.split("<tr>")
        flags = [bool(f) for f in marked.head(max_rows)]
        out = head + sep + rows[0] + "".join(('<tr class="winner">' if i < len(flags) and flags[i] else "<tr>") + r
                                             for i, r in enumerate(rows[1:]))
    return out + (paragraph(f"first {max_rows} of {len(df):,} rows", "muted") if len(df) > max_rows else "")


class Figures:
    """Renders figures once: a PNG file beside the report and a base64 ``<img>`` inside it."""

    def __init__(self, out_dir: Path):
        from custscore.analytics import figures  # matplotlib/seaborn load only when a report is built

        self.lib = figures
        self.out_dir = out_dir
        self.paths: list[Path] = []

    def img(self, name: str, fig, alt: str) -> str:
        """Save a matplotlib figure as ``name.png`` and return its ``<img>``."""
        path = self.out_dir / f"{name}.png"
        return self._tag(self.lib.save_png(fig, path), path, alt)

    def embed(self, source: Path, name: str, title: str) -> str:
        """Copy a PNG that already exists (a training figure) beside the report; a titled ``<img>``."""
        data = Path(source).read_bytes()
        path = self.out_dir / f"{name}.png"
        path.write_bytes(data)
        return heading(title) + self._tag(data, path, title)

    def _tag(self, data: bytes, path: Path, alt: str) -> str:
        self.paths.append(path)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        return f'<img src="{uri}" alt="{html.escape(alt)}">'


def render_page(sections: list[Section], findings: list[str], generated: dt.datetime) -> str:
    """The whole HTML document: title, key findings, a table of contents and every section."""
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.key}"><h2>{html.escape(s.title)}<span class="status">{s.status}</span></h2>'
                   + "".join(s.parts) + "</section>" for s in sections)
    items = "".join(f"<li>{html.escape(f)}</li>" for f in findings)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>custscore report</title>'
            f"<style>{CSS}</style></head><body><h1>custscore report</h1>"
            f'<p class="muted">generated {generated:%Y-%m-%d %H:%M:%S} UTC</p><h2>Key findings</h2><ul>{items}</ul>'
            f"<nav><ul>{toc}</ul></nav>{body}</body></html>")
