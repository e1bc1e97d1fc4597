"""Secrets never printed: passwords in URLs are masked wherever a URL is shown."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)", re.IGNORECASE)


def redact_url(url: str) -> tuple[str, tuple[str, ...]]:
    """The URL with its password (in the user part or a ``password=`` query option)
    replaced by ``***``, and every spelling of that password, longest first, for scrubbing
    messages that quote it."""
    parts = urlsplit(url)
    secrets: list[str] = []
    netloc = parts.netloc
    if parts.password is not None:
        secrets += [parts.password, unquote(parts.password)]
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "password":
            secrets += [value, quote(value, safe="")]
            value = "***"
        query.append((name, value))
    masked = urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))
    # Longest first, so a password that contains another spelling of itself goes whole.
    return masked, tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return redact_url(url)[0]


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***\3", text)
