"""Reading JSON documents one at a time, in bounded memory, without letting one bad document stop the rest.

``custscore insert`` takes JSON lines, a JSON array or one (pretty-printed) object.
JSON lines are read line by line: a line that is not JSON, is nested too deeply to
read or holds an integer too long to convert becomes a :class:`Problem` for that
line and the next line is read. An array (or a stream of concatenated objects) is
decoded element by element from a growing buffer; a syntax error there cannot be
skipped safely, so it ends the read with a problem naming the line and column
(what was read before it is stored). Invalid UTF-8 bytes are kept as lone surrogates, which
validation then refuses for that document only.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from custscore.errors import InputError
from custscore.store import limits
from custscore.store.validation import Problem

CHUNK_CHARS = 1 << 20
# a single document's text may be larger than its BSON, but not by this much
MAX_DOCUMENT_CHARS = 4 * limits.MAX_DOCUMENT_BYTES
EXAMPLE = '[{"customer_id": "C1", "signup_date": "2024-05-31", "age": 41}]'
_WS = " \t\r\n"


class ReadProblem(Problem):
    """A document that could not be read at all: where it is, and why."""

    def __str__(self) -> str:
        return f"row {self.index}: {self.field}: {self.reason}"


def open_source(source: str | Path | TextIO) -> tuple[str, TextIO]:
    """A display name and a text stream for a path, ``"-"`` (stdin) or an open stream."""
    if hasattr(source, "read"):
        stream = source
        if stream is sys.stdin and hasattr(sys.stdin, "buffer"):
            stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
        return ("stdin" if source is sys.stdin else str(getattr(source, "name", "input"))), stream
    if str(source) == "-":
        return open_source(sys.stdin)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"file {str(path)!r} does not exist; give the path of a JSON or JSON-lines file, or - for stdin")
    try:
        return path.name, path.open(encoding="utf-8", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path.name}: {exc.strerror}; give a readable JSON or JSON-lines file") from exc


def _parse_problem(index: int, where: str, exc: Exception) -> Problem:
    if isinstance(exc, RecursionError):
        reason = f"is nested too deeply to read (documents may have at most {limits.MAX_NESTING} levels)"
    elif isinstance(exc, json.JSONDecodeError):
        reason = f"is not valid JSON ({exc.msg} at column {exc.colno}); fix or remove it"
    elif "integer string conversion" in str(exc):
        reason = "holds an integer too long to read; store it as text"
    else:
        reason = f"cannot be read ({str(exc).split(':', 1)[0]}); fix or remove it"
    return ReadProblem(index, where, None, reason)


def iter_documents(source: str | Path | TextIO, start_index: int = 1) -> Iterator[Any]:
    """Each document of ``source`` in file order, or a :class:`Problem` for one that cannot be read.

    Parameters
    ----------
    source : str, Path or text stream
        A file path, ``"-"`` for standard input, or an open text stream.
    start_index : int
        Number of the first document (as problems name them).

    Yields
    ------
    dict or other JSON value, or Problem
        Parsed values (not yet validated) and, in their place, problems (an array that breaks
        off mid-way ends with a problem naming the line and column).

    Raises
    ------
    InputError
        The file is missing, unreadable or holds no documents.
    """
    name, stream = open_source(source)
    try:
        head = _skip_blank(stream)
        if not head:
            raise InputError(f"{name} holds no documents; give a JSON array, one object or JSON lines such as {EXAMPLE}")
        if head.lstrip(_WS)[0] == "[":
            yield from _values(name, stream, head, start_index, array=True)
            return
        if head.lstrip(_WS)[0] == "{":
            try:
                json.loads(head)
            except json.JSONDecodeError:  # not one object per line: a pretty-printed object (or several)
                yield from _values(name, stream, head, start_index, array=False)
                return
            except (RecursionError, ValueError):
                pass
        yield from _lines(name, stream, head, start_index)
    finally:
        if stream is not source and stream is not sys.stdin:
            stream.close()


def _skip_blank(stream: TextIO) -> str:
    while True:
        line = stream.readline(CHUNK_CHARS)
        if not line or line.strip(_WS):
            return line


def _lines(name: str, stream: TextIO, first: str, index: int) -> Iterator[Any]:
    line_no = 1
    line = first
    while line:
        if line.strip(_WS):
            where = f"{name} line {line_no}"
            if len(line) >= CHUNK_CHARS and not line.endswith("\n"):
                size = len(line) + _drain_line(stream)
                yield ReadProblem(index, where, None, f"is {size:,} characters long, past the "
                              f"{limits.MAX_DOCUMENT_BYTES // 2**20} MB document limit; split it")
            else:
                try:
                    yield json.loads(line)
                except (ValueError, RecursionError) as exc:
                    yield _parse_problem(index, where, exc)
            index += 1
        line = stream.readline(CHUNK_CHARS)
        line_no += 1


def _drain_line(stream: TextIO) -> int:
    size = 0
    while True:
        part = stream.readline(CHUNK_CHARS)
        size += len(part)
        if not part or part.endswith("\n"):
            return size


def _values(name: str, stream: TextIO, head: str, index: int, array: bool) -> Iterator[Any]:
    """Values of a JSON array (``array``) or of concatenated JSON values, decoded one at a time."""
    decoder = json.JSONDecoder()
    buf, pos, eof, at = head, 0, False, (0, 0)
    if array:
        pos = buf.index("[") + 1
    while True:
        # skip separators; an array ends at its "]"
        while True:
            while pos < len(buf) and buf[pos] in _WS + ("," if array else ""):
                pos += 1
            if pos < len(buf) or eof:
                break
            more = stream.read(CHUNK_CHARS)
            eof = not more
            buf, pos, at = _rebase(buf, pos, more, at)
        if pos >= len(buf):
            if array:
                yield ReadProblem(index, name, None, "ends before its closing ']'; fix the file or write one document per line")
            return
        if array and buf[pos] == "]":
            return
        try:
            value, end = decoder.raw_decode(buf, pos)
            if end == len(buf) and not eof:
                raise json.JSONDecodeError("value may go on", buf, end)
        except json.JSONDecodeError as exc:
            if not eof and len(buf) - pos < MAX_DOCUMENT_CHARS:
                more = stream.read(max(CHUNK_CHARS, len(buf) - pos))
                eof = not more
                buf, pos, at = _rebase(buf, pos, more, at)
                continue
            if len(buf) - pos >= MAX_DOCUMENT_CHARS:
                yield ReadProblem(index, f"{name} document {index}", None, f"is larger than the "
                              f"{limits.MAX_DOCUMENT_BYTES // 2**20} MB document limit; split it (the rest is not read)")
                return
            newlines = buf.count("\n", 0, exc.pos)
            line = at[0] + newlines + 1
            column = exc.pos - buf.rfind("\n", 0, exc.pos) if newlines else at[1] + exc.pos + 1
            yield ReadProblem(index, f"{name} line {line} column {column}", None, f"is not valid JSON ({exc.msg}); the "
                          "rest of the file is not read: fix it or write one document per line")
            return
        except (RecursionError, ValueError) as exc:
            yield _parse_problem(index, f"{name} document {index}", exc)
            return  # the rest of the array cannot be told apart from this document
        yield value
        index += 1
        pos = end
        if pos > CHUNK_CHARS:  # drop what was read
            buf, pos, at = _rebase(buf, pos, "", at)


def _rebase(buf: str, pos: int, more: str, at: tuple[int, int]) -> tuple[str, int, tuple[int, int]]:
    """Drop what the buffer holds before ``pos`` and append ``more``.

    ``at`` is (lines before the buffer, characters of its first line dropped already), so that
    line and column numbers stay right even for a whole file on one line.
    """
    lines, column = at
    newlines = buf.count("\n", 0, pos)
    if newlines:
        column = pos - buf.rfind("\n", 0, pos) - 1
    else:
        column += pos
    return buf[pos:] + more, 0, (lines + newlines, column)
