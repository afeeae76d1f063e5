"""A stored BSON document's top-level elements, to ``$set`` top-level fields without decoding the rest.

The scorer's write-back sets one field (``score``) on a 2-3 KB customer document: decoding the whole document and
encoding it again cost ~55 microseconds a customer, and walking it for the nesting limit another ~17. Splicing
the new elements into the stored bytes keeps every other byte as it was, which is also what MongoDB stores: a
``$set`` of an existing field keeps its place, a new one is appended. Only the values written are encoded (and
checked against MongoDB's limits); the rest was checked when it was stored.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_INT32 = struct.Struct("<i")
# value sizes by BSON type: fixed widths, and the types whose value starts with its own int32 length
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x7F: 0,
          0xFF: 0}
_SIZED = frozenset({0x03, 0x04, 0x0F})  # embedded document, array, code with scope: the int32 counts itself
_STRINGS = frozenset({0x02, 0x0D, 0x0E})  # string, code, symbol: int32 length of the bytes that follow it
_BINARY = 0x05  # int32 length, a subtype byte, the bytes
_REGEX = 0x0B  # two C strings
_DBPOINTER = 0x0C  # a string and a 12-byte ObjectId


class MalformedBSON(ValueError):
    """The bytes are not a BSON document this walk understands (the caller decodes instead)."""


def _length(blob: bytes, pos: int, least: int) -> int:
    """The int32 length at ``pos``, refused when shorter than ``least`` (a damaged length must not walk back)."""
    (n,) = _INT32.unpack_from(blob, pos)
    if n < least:
        raise MalformedBSON(f"a length of {n} at byte {pos}")
    return n


def elements(blob: bytes) -> Iterator[tuple[str, int, int]]:
    """``(key, start, end)`` of each top-level element of a BSON document (``blob[start:end]`` is the element:
    type byte, key and value). Raises :class:`MalformedBSON` for bytes that are not one whole document."""
    end_of_doc = len(blob) - 1
    if len(blob) < 5 or _INT32.unpack_from(blob, 0)[0] != len(blob) or blob[end_of_doc] != 0:
        raise MalformedBSON("not a whole BSON document")
    pos = 4
    try:
        while pos < end_of_doc:
            start = pos
            kind = blob[pos]
            nul = blob.index(b"\x00", pos + 1)
            key = blob[pos + 1:nul].decode("utf-8")
            pos = nul + 1
            if kind in _FIXED:
                pos += _FIXED[kind]
            elif kind in _SIZED:
                pos += _length(blob, pos, 5)
            elif kind in _STRINGS:
                pos += 4 + _length(blob, pos, 1)
            elif kind == _BINARY:
                pos += 5 + _length(blob, pos, 0)
            elif kind == _REGEX:
                pos = blob.index(b"\x00", blob.index(b"\x00", pos) + 1) + 1
            elif kind == _DBPOINTER:
                pos += 4 + _length(blob, pos, 1) + 12
            else:
                raise MalformedBSON(f"unknown BSON type 0x{kind:02x}")
            if pos > end_of_doc:
                raise MalformedBSON("an element runs past the end of the document")
            yield key, start, pos
    except (ValueError, struct.error) as exc:  # no NUL where a name ends, a name that is not UTF-8, a cut length
        if isinstance(exc, MalformedBSON):
            raise
        raise MalformedBSON(str(exc)) from exc


def set_elements(blob: bytes, new: bytes) -> tuple[bytes, list[str]] | None:
    """``blob`` with the top-level elements of the BSON document ``new`` set: an existing key replaced in place,
    a new one appended. Returns the document and the keys whose value changed (its bytes differ: MongoDB's
    test of a no-op ``$set``), or None when none did."""
    fresh = {key: new[start:end] for key, start, end in elements(new)}
    parts: list[bytes] = []
    changed: list[str] = []
    for key, start, end in elements(blob):
        element = fresh.pop(key, None)
        old = blob[start:end]
        if element is None or element == old:
            parts.append(old)
        else:
            parts.append(element)
            changed.append(key)
    parts.extend(fresh.values())
    changed.extend(fresh)
    if not changed:
        return None
    body = b"".join(parts)
    return _INT32.pack(len(body) + 5) + body + b"\x00", changed
