"""PostgreSQL connection refusals that no retry can cure, and what to do about each. No I/O.

A wrong database name, an unknown role or a bad password is a mistake in the URL: retrying
it with backoff (as a lost connection is retried) only delays the answer and hides it behind
"check the server is running". The ledger and the PostgreSQL limit store both ask
:func:`refusal` whether a failed connection is such a mistake, and fail at once if so.

psycopg gives a failed *connection* no SQLSTATE (libpq reports only the server's text; see
psycopg/psycopg#1188), so the server's message is matched when the state is missing. Those
messages are libpq's and the server's English ones; a server configured with another
``lc_messages`` is not recognised and keeps being retried, as before.
"""

from __future__ import annotations

import re

_USER_HINT = "check the user and password in the URL"

# (SQLSTATE, the server's message, what the user reads). ``{name}`` is the quoted name in
# the message, else the database named by the URL.
_REFUSALS: tuple[tuple[str | None, re.Pattern[str], str], ...] = (
    ("3D000", re.compile(r'database "(?P<name>[^"]*)" does not exist'),
     'database "{name}" does not exist: create it (createdb {name}) or fix the URL'),
    ("28000", re.compile(r'role "(?P<name>[^"]*)" does not exist'),
     'role "{name}" does not exist: ' + _USER_HINT),
    ("28P01", re.compile(r'password authentication failed for user "(?P<name>[^"]*)"'),
     'password authentication failed for user "{name}": ' + _USER_HINT),
    (None, re.compile(r"no password supplied"),
     "the server asks for a password and the URL gives none: put it in the URL "
     "(postgresql://user:password@host/db), in PGPASSWORD or in ~/.pgpass"),
    ("28000", re.compile(r"no pg_hba\.conf entry|pg_hba\.conf rejects"),
     "the server's pg_hba.conf does not let this user reach this database from this host: "
     "fix the URL, or ask the server's administrator to allow it"),
    ("28000", re.compile(r'(?:Peer|Ident) authentication failed for user "(?P<name>[^"]*)"'),
     'the server accepts user "{name}" only from the system user of the same name: '
     "connect over TCP with a password (host=127.0.0.1) or as that system user"),
    ("42501", re.compile(r'permission denied for database "(?P<name>[^"]*)"'),
     'user may not connect to database "{name}": grant it CONNECT on the database or fix '
     "the URL"),
)
# States of those kinds whose message matched nothing above (a server speaking another language).
_BY_CLASS = (("28", "the server refused the login: " + _USER_HINT),
             ("3D", "database {name} does not exist: create it (createdb {name}) or fix the URL"))


def refusal(exc: BaseException, dbname: str | None = None) -> str | None:
    """What to do about ``exc``, a failed connection, if no retry can cure it; else None.

    ``dbname`` (the database the URL names) fills the hint when the message does not say.
    """
    state = getattr(exc, "sqlstate", None)
    text = str(exc)
    for code, pattern, hint in _REFUSALS:
        if state is not None and state != code:
            continue
        found = pattern.search(text)
        if found is not None:
            return hint.format(name=found.groupdict().get("name") or dbname)
    if state is not None:
        for prefix, hint in _BY_CLASS:
            if state.startswith(prefix):
                return hint.format(name=dbname or "?")
    return None
