"""Shared fixtures: real services, isolated per test.

With ``HOKURO_REQUIRE_SERVICES=1`` (CI) a missing PostgreSQL, Redis or S3 server fails the
tests that need it; otherwise those tests are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

REQUIRE_SERVICES = os.environ.get("HOKURO_REQUIRE_SERVICES") == "1"
PG_HOST = os.environ.get("HOKURO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HOKURO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HOKURO_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("HOKURO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing(service: str, why: str) -> None:
    message = f"{service} is not available ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; HOKURO_REQUIRE_SERVICES=1 demands it", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Iterator:
    """A fresh working directory, so ``Spot("name")`` writes under it."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


# -- PostgreSQL ------------------------------------------------------------------------------

def _admin_dsn(db: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


@pytest.fixture(scope="session")
def pg_admin():
    try:
        import psycopg
    except ImportError:
        _missing("PostgreSQL", "psycopg is not installed: pip install 'hokuro[postgres]'")
    if not _port_open(PG_HOST, PG_PORT):
        _missing("PostgreSQL", f"nothing listens on {PG_HOST}:{PG_PORT}")
    try:
        conn = psycopg.connect(_admin_dsn(), autocommit=True, connect_timeout=5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        _missing("PostgreSQL", str(exc))
    yield conn
    conn.close()


@pytest.fixture
def pg_url(pg_admin) -> Iterator[str]:
    """A URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"hokuro_t_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _admin_dsn(name)
    finally:
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


# -- Redis -----------------------------------------------------------------------------------

@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis URL; keys written under a per-test prefix are removed after."""
    try:
        import redis
    except ImportError:
        _missing("Redis", "redis is not installed: pip install 'hokuro[redis]'")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except Exception as exc:
        _missing("Redis", str(exc))
    yield REDIS_URL
    client.close()


@pytest.fixture
def redis_prefix(redis_url) -> Iterator[str]:
    import redis

    prefix = f"hokuro-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


# -- S3 (moto's standalone server, started once per test session) ------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        _missing("S3", "boto3 and moto[server] are needed: pip install -e '.[dev]'")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _missing("S3", "moto's server did not start")
        time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["HOKURO_S3_ENDPOINT_URL"] = endpoint
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_url(s3_endpoint) -> str:
    """An ``s3://bucket/prefix`` URL of a new bucket on the local S3 server."""
    import boto3

    bucket = f"hokuro-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/blobs"


# -- the engine over every backend -------------------------------------------------------------
#
# The engine's suites (marking, blob results, resources, single flight) run twice: on the
# embedded default (SQLite file + blob folder under the working directory) and on the shared
# pair (a PostgreSQL database + an S3 bucket). Tests ask ``make_spot`` for their Spots and
# never name a backend themselves, so both runs prove the same behaviour.

@pytest.fixture(params=["embedded",
                        pytest.param("shared", marks=[pytest.mark.postgres, pytest.mark.s3])])
def backend(request) -> str:
    """``"embedded"`` or ``"shared"``: where this run of the test keeps its records."""
    return request.param


class SpotFactory:
    """Makes the Spots of one test on its backend; closes them all at teardown.

    On the shared backend each Spot name gets its own database and blob prefix, as each
    embedded name gets its own file and folder: two names never see each other's tasks, and
    the same name opened twice (or by a child process) is the same Spot.
    """

    def __init__(self, kind: str, workspace, request) -> None:
        self.kind = kind
        self.workspace = workspace
        self._urls: dict[str, tuple[str, str]] = {}
        self._extra_databases: list[str] = []
        self._made: list = []
        if self.shared:
            # Asked for here, while the factory itself is set up, so that pytest tears the
            # database and bucket down after the factory has closed its Spots.
            self._admin = request.getfixturevalue("pg_admin")
            self._pg_url = request.getfixturevalue("pg_url")
            self._bucket = request.getfixturevalue("s3_url").split("/")[2]

    @property
    def shared(self) -> bool:
        return self.kind == "shared"

    @property
    def home(self):
        """The workspace folder every Spot of this test uses (``.hokuro`` under the test's
        working directory), which child processes are given too."""
        return self.workspace / ".hokuro"

    def urls(self, name: str) -> tuple[str, str]:
        """(db URL, blobs URL) of Spot ``name``; empty strings on the embedded backend.

        Child processes (tests/procs.py) take them as their last two arguments.
        """
        if not self.shared:
            return "", ""
        if name not in self._urls:
            if not self._urls:
                db = self._pg_url
            else:
                db_name = f"hokuro_t_{uuid.uuid4().hex[:12]}"
                self._admin.execute(f'CREATE DATABASE "{db_name}"')
                self._extra_databases.append(db_name)
                db = _admin_dsn(db_name)
            self._urls[name] = (db, f"s3://{self._bucket}/spot-{len(self._urls)}")
        return self._urls[name]

    def __call__(self, name: str = "t", **kwargs):
        from hokuro import Spot

        if self.shared:
            db, blobs = self.urls(str(name))
            kwargs.setdefault("db", db)
            if "storage" not in kwargs:
                kwargs.setdefault("blobs", blobs)
            kwargs.setdefault("workspace", self.home)
        spot = Spot(name, **kwargs)
        self._made.append(spot)
        return spot

    def close(self) -> None:
        for spot in self._made:
            spot.close()
        for db_name in self._extra_databases:
            self._admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s", (db_name,))
            self._admin.execute(f'DROP DATABASE IF EXISTS "{db_name}"')


@pytest.fixture
def make_spot(backend, workspace, request) -> Iterator[SpotFactory]:
    """``make_spot(name="t", **kwargs)``: a Spot on this test's backend (see ``backend``)."""
    factory = SpotFactory(backend, workspace, request)
    yield factory
    factory.close()


def trace_ledger(spot, *names) -> list[tuple[str, int]]:
    """Record (name, thread id) of each call of the ledger methods ``names`` of ``spot``
    (the real methods run; the calls are only recorded)."""
    import threading

    calls: list[tuple[str, int]] = []
    for name in names:
        real = getattr(spot.ledger, name)

        def traced(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, threading.get_ident()))
            return _real(*args, **kwargs)

        setattr(spot.ledger, name, traced)
    return calls
