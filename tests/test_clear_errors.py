"""Mistakes in configuration and damaged files get a HokuroError naming the path or URL and
what to do, at once, and leave every file exactly as it was (DESIGN invariant 5)."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from hokuro import HokuroError, Spot
from hokuro.cli import main
from hokuro.errors import BlobError, LedgerError, LimitStoreError
from hokuro.store.postgres_refusals import refusal

SECRET = "s3cret-pw"
# Generous: a refusal is answered in milliseconds; the retries it replaces took 11 s.
AT_ONCE = 2.0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def chain(exc: BaseException | None) -> str:
    """The text of ``exc`` and of every exception it was raised from."""
    texts = []
    while exc is not None:
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def hokuro(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- PostgreSQL: a wrong URL is not a network failure -----------------------------------------

def _wrong(pg_url: str, *, user: str | None = None, db: str) -> str:
    """``pg_url``'s server, with a password and the given user and database."""
    parts = urlsplit(pg_url)
    return f"postgresql://{user or parts.username}:{SECRET}@{parts.hostname}:{parts.port}/{db}"


def test_an_unknown_postgres_database_fails_at_once_saying_to_create_it(pg_url):
    started = time.monotonic()
    with pytest.raises(LedgerError) as raised:
        Spot("s", db=_wrong(pg_url, db="hokuro_no_such_db"))
    assert time.monotonic() - started < AT_ONCE
    message = str(raised.value)
    assert 'database "hokuro_no_such_db" does not exist' in message
    assert "createdb hokuro_no_such_db" in message and "running" not in message
    assert SECRET not in chain(raised.value) and "***" in message


def test_an_unknown_postgres_role_fails_at_once_saying_to_check_the_user(pg_url):
    started = time.monotonic()
    with pytest.raises(LedgerError) as raised:
        Spot("s", db=_wrong(pg_url, user="hokuro_no_such_role", db="postgres"))
    assert time.monotonic() - started < AT_ONCE
    message = str(raised.value)
    assert 'role "hokuro_no_such_role" does not exist' in message
    assert "check the user and password in the URL" in message
    assert SECRET not in chain(raised.value) and "***" in message


def test_the_postgres_limit_store_reports_a_wrong_database_on_first_use_not_when_defined(
        pg_url, workspace):
    spot = Spot("s", limits=_wrong(pg_url, db="hokuro_no_such_db"))
    limiter = spot.limiter(name="api", limits=["10/s"])  # at import time: must not fail
    started = time.monotonic()
    with pytest.raises(LimitStoreError) as raised:
        limiter.acquire()
    assert time.monotonic() - started < AT_ONCE
    assert "createdb hokuro_no_such_db" in str(raised.value)
    assert SECRET not in chain(raised.value)
    spot.close()


@pytest.mark.parametrize(("message", "hint"), [
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  password '
     'authentication failed for user "app"', 'user "app": check the user and password'),
    ('connection to server at "db" failed: FATAL:  no pg_hba.conf entry for host "10.0.0.2", '
     'user "app", database "jobs", no encryption', "pg_hba.conf"),
    ("connection to server at \"db\" failed: fe_sendauth: no password supplied",
     "put it in the URL"),
    ('FATAL:  Peer authentication failed for user "app"', "host=127.0.0.1"),
])
def test_login_refusals_are_told_apart_by_the_servers_message(message, hint):
    # psycopg gives a failed connection no SQLSTATE (psycopg/psycopg#1188): only the text.
    found = refusal(Exception(message))
    assert found is not None and hint in found


def test_a_lost_connection_is_not_a_refusal():
    lost = Exception('connection to server at "db", port 5432 failed: Connection refused\n\t'
                     "Is the server running on that host and accepting TCP/IP connections?")
    assert refusal(lost) is None


# -- SQLite ledger files ----------------------------------------------------------------------

def _ledger(folder: Path, rows: int = 50) -> Path:
    with Spot("good", workspace=folder) as spot:
        @spot.mark
        def work(n):
            return "x" * 1000 * (n % 5)

        for n in range(rows):
            work(n)
    return folder / "good.db"


def _garble(path: Path, start: int) -> None:
    """Overwrite every byte of ``path`` from ``start`` on with garbage, keeping its length."""
    data = bytearray(path.read_bytes())
    for i in range(start, len(data)):
        data[i] = (data[i] * 31 + 7 + i) % 256
    path.write_bytes(bytes(data))


def test_a_damaged_ledger_is_named_and_left_byte_identical(tmp_path, workspace):
    path = _ledger(tmp_path / "made")
    _garble(path, 4096)  # a valid header page, garbage after it
    before = digest(path)
    with pytest.raises(LedgerError) as raised:
        Spot("good", db=path)
    assert str(path) in str(raised.value) and "damaged" in str(raised.value)
    assert ".recover" in str(raised.value)
    result = hokuro("list", str(path))
    assert result.exit_code != 0 and "damaged" in result.output
    assert digest(path) == before


def test_damage_found_while_reading_is_named_too(tmp_path, workspace):
    path = _ledger(tmp_path / "made", rows=400)
    size = path.stat().st_size
    _garble(path, size // 2)  # the schema reads; half the rows do not
    before = digest(path)
    # (stats reads the tally, a few rows: a listing of every record reaches the damage.)
    with Spot("good", db=path) as spot, pytest.raises(LedgerError) as raised:
        list(spot.find())
    assert str(path) in str(raised.value) and "damaged" in str(raised.value)
    result = hokuro("list", str(path), "--limit", "0")
    assert result.exit_code != 0 and "damaged" in result.output
    assert digest(path) == before


def test_a_file_that_is_not_a_database_is_named_and_left_byte_identical(workspace):
    path = workspace / "x.db"
    path.write_bytes(os.urandom(8192))
    before = digest(path)
    with pytest.raises(LedgerError, match="is not a SQLite database") as raised:
        Spot("x", db=path)
    assert str(path) in str(raised.value)
    result = hokuro("stats", str(path))
    assert result.exit_code != 0 and "not a SQLite database" in result.output
    assert digest(path) == before


def test_a_ledger_under_a_path_that_is_a_file_names_that_file(workspace):
    blocker = workspace / "somefile"
    blocker.write_text("mine")
    with pytest.raises(LedgerError) as raised:
        Spot("x", db=blocker / "x.db")
    assert f"{blocker} is a file, not a folder" in str(raised.value)
    assert blocker.read_text() == "mine"


def test_a_blob_folder_under_a_path_that_is_a_file_names_that_path(workspace):
    blocker = workspace / "somefile"
    blocker.write_text("mine")
    with pytest.raises(BlobError, match="cannot make the blob folder"):
        Spot("x", blobs=blocker / "blobs")
    assert blocker.read_text() == "mine"


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: chmod for a user; for root (whom chmod does not
    stop), sysfs, which refuses new files to everyone."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    for candidate in (Path("/sys"),):
        try:
            sqlite3.connect(candidate / "hokuro-probe.db").execute("PRAGMA user_version = 1")
        except sqlite3.Error:
            return candidate
    pytest.skip("running as root with no read-only folder to test in")


def test_a_read_only_workspace_says_which_folder_and_what_to_do(tmp_path):
    folder = _read_only_folder(tmp_path)
    try:
        with pytest.raises(LedgerError) as raised:
            Spot("x", workspace=folder)
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o755)
    message = str(raised.value)
    assert str(folder / "x.db") in message and "writable" in message


# -- Redis limits: a server that is down fails the call, not the definition ------------------

def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_redis_limit_store_that_is_down_fails_the_call_with_its_reason(workspace):
    pytest.importorskip("redis")
    url = f"redis://:{SECRET}@127.0.0.1:{_closed_port()}/0"
    spot = Spot("s", limits=url)
    ran = []

    @spot.limiter(name="api", limits=["10/s"], cost=1)  # decorating (at import) must not fail
    def call_api():
        ran.append(1)

    with pytest.raises(LimitStoreError) as raised:
        call_api()
    message = str(raised.value)
    assert "Redis limit store redis://:***@127.0.0.1" in message
    assert "check that the server is running" in message and SECRET not in message
    assert isinstance(raised.value, HokuroError) and ran == []
    spot.close()


def test_a_sqlite_database_of_another_program_is_refused_and_left_byte_identical(tmp_path,
                                                                                  workspace):
    import sqlite3

    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.close()
    before = digest(path)
    with pytest.raises(LedgerError) as raised:
        Spot("mine", db=path)
    assert "not a hokuro ledger" in str(raised.value) and "customers" in str(raised.value)
    assert digest(path) == before
    assert not path.with_name("theirs.db-wal").exists()
