"""The Spots of a PostgreSQL database: one schema each, found, created, adopted, migrated.

Each Spot's tables (``tasks``, ``hokuro_meta``, and since schema 3 ``runs``, ``jobs`` and
``job_edges``) live in schema ``hokuro_<name>`` (:func:`schema_of`); its ``hokuro_meta`` names
the Spot, its schema version and where its blobs are. The database's default schema (the
*home*, usually ``public``) holds only a ``hokuro_meta`` whose version marks that layout:
hokuro 0.1, which kept one Spot's tables in the home schema, reads that version first and
asks to be upgraded instead of making tables of its own beside the Spots.

A database of schema 1 is adopted by the first Spot that opens it writable: its tables move
into that Spot's schema as they are (``ALTER TABLE ... SET SCHEMA``), then migrate. Readers
never move it: they read it where it is.

All of this runs once per ledger, on a connection of its own, before the pool (whose
connections are set to the Spot's schema) exists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from ...errors import ConfigurationError, SchemaError
from .queries import load_queries

if TYPE_CHECKING:
    from psycopg import Connection

SCHEMA_VERSION = 6
#: The first schema with the tally (stats read it instead of counting every record).
TALLY_SCHEMA = 6
#: The schema of Spot ``name`` is ``hokuro_<name>`` (see :func:`schema_of`).
SCHEMA_PREFIX = "hokuro_"
#: The Spot a ledger opened without a name creates in an empty database (``Spot()``'s).
DEFAULT_SPOT = "default"
Q = load_queries("postgres")
# PostgreSQL cuts identifiers at 63 bytes (Spot names are ASCII: a byte per character).
_IDENTIFIER_MAX = 63
_DIGEST = 10


def schema_of(spot: str) -> str:
    """The schema that holds Spot ``spot``'s tables: ``hokuro_<spot>``, or for a name too
    long for an identifier, its start and a hash of the whole name."""
    schema = SCHEMA_PREFIX + spot
    if len(schema.encode()) <= _IDENTIFIER_MAX:
        return schema
    digest = hashlib.sha256(spot.encode()).hexdigest()[:_DIGEST]
    keep = _IDENTIFIER_MAX - len(SCHEMA_PREFIX) - _DIGEST - 1
    return f"{SCHEMA_PREFIX}{spot[:keep]}_{digest}"


def named(name: str, **identifiers: str) -> sql.Composed:
    """Named query ``name`` with its ``{schema}``/``{home}`` identifiers quoted in."""
    return sql.SQL(Q[name]).format(**{k: sql.Identifier(v) for k, v in identifiers.items()})


def read_version(conn: Connection) -> int | None:
    """The schema version in the first ``hokuro_meta`` of the connection's search_path."""
    row = conn.execute(Q["meta_exists"]).fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute(Q["get_schema_version"]).fetchone()
    return int(row[0]) if row else None


@dataclass(frozen=True, slots=True)
class Found:
    """Where a ledger's tables are: Spot ``spot`` in ``schema``, at schema ``version``; a
    schema 1 database used where it is has neither name nor schema."""

    spot: str | None
    schema: str | None
    version: int


class Directory:
    """The Spots of one database, seen through one connection. ``where`` (the URL, password
    masked) names the database in messages."""

    def __init__(self, conn: Connection, where: str) -> None:
        self.conn = conn
        self.where = where
        row = conn.execute(Q["home_schema"]).fetchone()
        if row is None or row[0] is None:
            raise SchemaError(
                f"no schema of the search_path of {where} exists; set search_path to an "
                "existing schema (the URL's options=-csearch_path=...)")
        self.home = str(row[0])

    # -- reading --------------------------------------------------------------------------
    def spots(self) -> dict[str, str]:
        """The Spots of the database: name -> schema, by name."""
        found = {}
        for (schema,) in self.conn.execute(Q["spot_schemas"]).fetchall():
            name = self._meta(schema, "spot")
            if name is not None:
                found[name] = schema
        return dict(sorted(found.items()))

    def legacy(self) -> bool:
        """True when the home schema holds a ledger of schema 1 no Spot adopted yet."""
        return self._has("tasks_in", self.home) and self._version(self.home) == 1

    def names(self) -> list[str | None]:
        """:meth:`spots` by name, and None for a schema 1 ledger not adopted yet."""
        names: list[str | None] = list(self.spots())
        if self.legacy():
            names.append(None)
        return names

    # -- opening --------------------------------------------------------------------------
    def open(self, wanted: str | None, *, read_only: bool, create: bool) -> Found:
        """Find Spot ``wanted`` (None: the only Spot); with ``create``, make or adopt it,
        and migrate it unless ``read_only``."""
        self.refuse_newer(read_version(self.conn))
        if wanted is None:
            found = self.spots()
            if len(found) > 1:
                raise ConfigurationError(
                    f"{self.where} holds several Spots ({', '.join(found)}); name one: "
                    "--spot NAME on the command line, Spot(NAME, db=...) or "
                    "open_ledger(..., spot=NAME) in Python")
            if found:
                wanted = next(iter(found))
            elif self.legacy():
                return Found(None, None, 1)  # schema 1: used where it is
            elif not create:
                raise SchemaError(
                    f"{self.where} holds no hokuro ledger (no Spot); check the database "
                    "name, or open a Spot on it once to create one")
            else:
                wanted = DEFAULT_SPOT
        schema = schema_of(wanted)
        if self._has("meta_in", schema):
            self._check_owner(schema, wanted)
            version = self._version(schema)
            self.refuse_newer(version)
            if version != SCHEMA_VERSION:
                if read_only:
                    if version is None or version < 2:
                        raise SchemaError(
                            f"Spot {wanted!r} of {self.where} has schema {version}, older "
                            f"than this hokuro's ({SCHEMA_VERSION}); open it once without "
                            "read_only to migrate it")
                    # Read where it is (readers never migrate): schema 2 lacks only the
                    # runs tables, and reads as a Spot with no runs.
                    return Found(wanted, schema, version)
                self._create(wanted, schema)
        elif not create:
            if self.legacy():
                return Found(None, None, 1)  # not adopted: read where it is, by no reader moved
            raise SchemaError(
                f"no Spot named {wanted!r} in {self.where}; Spots there: "
                f"{', '.join(self.spots()) or 'none'}")
        else:
            self._create(wanted, schema)
        return Found(wanted, schema, SCHEMA_VERSION)

    def _create(self, spot: str, schema: str) -> None:
        """Make, adopt or migrate Spot ``spot``'s schema, under the advisory lock."""
        self.conn.execute(Q["lock_schema"])
        try:
            with self.conn.transaction():
                self._create_locked(spot, schema)
        finally:
            self.conn.execute(Q["unlock_schema"])

    def _create_locked(self, spot: str, schema: str) -> None:
        conn = self.conn
        # Read again under the lock: another process may have finished meanwhile.
        version = 0
        if self._has("meta_in", schema):
            self._check_owner(schema, spot)
            version = self._version(schema) or 0
            self.refuse_newer(version)
        else:
            self.refuse_newer(read_version(conn))
            if self.legacy():
                # The first Spot to open a schema 1 database adopts its tables.
                conn.execute(named("adopt", schema=schema, home=self.home))
                version = 1
            conn.execute(Q["create_meta"])  # the marker, in the home schema
            conn.execute(Q["set_schema_version"], {"version": str(SCHEMA_VERSION)})
            conn.execute(named("create_schema", schema=schema))
        conn.execute(named("use_schema_here", schema=schema))
        conn.execute(Q["create_meta"])
        for step in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute(named(f"migration_{step}", schema=schema))
            conn.execute(Q["set_schema_version"], {"version": str(step)})
        conn.execute(Q["set_meta"], {"name": "spot", "value": spot})

    # -- small pieces ---------------------------------------------------------------------
    def refuse_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaError(
                f"{self.where} has schema {version}, newer than this hokuro knows "
                f"({SCHEMA_VERSION}); upgrade hokuro"
            )

    def _check_owner(self, schema: str, spot: str) -> None:
        owner = self._meta(schema, "spot")
        if owner is not None and owner != spot:
            # Only a schema someone else named hokuro_<name> can get here.
            raise ConfigurationError(
                f"schema {schema} of {self.where} holds Spot {owner!r}, not {spot!r}; "
                "rename one of them")

    def _has(self, query: str, schema: str) -> bool:
        row = self.conn.execute(Q[query], {"schema": schema}).fetchone()
        return bool(row and row[0])

    def _meta(self, schema: str, name: str) -> str | None:
        row = self.conn.execute(named("meta_of", schema=schema), {"name": name}).fetchone()
        return None if row is None else row[0]

    def _version(self, schema: str) -> int | None:
        if not self._has("meta_in", schema):
            return None
        value = self._meta(schema, "schema_version")
        return None if value is None else int(value)
