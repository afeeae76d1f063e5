"""Secrets never reach a screen or a log: every URI-shaped string loses its password, whatever its scheme.

``redact`` works on any text (an error message, a log line, a status
location), not only on a URI that parses: ``mysql://admin:S3cret@h:1/``,
``mongodb://admin:pw@h1:1,h2:2/?replicaSet=rs0`` and a URI whose port is
out of range are all redacted, and so are credentials in a query string
(``?password=...``, ``authMechanismProperties=AWS_SESSION_TOKEN:...``).
The CLI runs every error line and every log record through it.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_STOP = " \t\r\n'\"<>`"
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|authMechanismProperties"
    r"|tlsCertificateKeyFilePassword|sslPassword)=)([^&#\s'\"]*)"
)


def _redact_uri(token: str) -> str:
    # the authority ends at the first "/" after the last "@" (a password may hold "/", "@" or ":")
    at = token.rfind("@", 0, _authority_end(token))
    if at != -1:
        userinfo = token[:at]
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:{MASK}" if colon else MASK  # a bare userinfo may itself be a token
        token = f"{shown}@{token[at + 1:]}"
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, token)


def _authority_end(token: str) -> int:
    at = token.rfind("@")
    if at == -1:
        return 0
    for i in range(at, len(token)):
        if token[i] in "/?#":
            return i
    return len(token)


def redact(text: str) -> str:
    """``text`` with the password (or bare credential) of every ``scheme://user:pass@host`` replaced by ``***``.

    Parameters
    ----------
    text : str
        Any text: a URI, an error message, a log line.

    Returns
    -------
    str
        The same text, safe to show.
    """
    if not isinstance(text, str) or "://" not in text:
        return text
    out: list[str] = []
    pos = 0
    for match in _SCHEME.finditer(text):
        if match.start() < pos:
            continue
        end = match.end()
        while end < len(text) and text[end] not in _STOP:
            end += 1
        out.append(text[pos:match.end()])
        out.append(_redact_uri(text[match.end():end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (arguments included) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
