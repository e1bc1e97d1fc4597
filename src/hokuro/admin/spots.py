"""The Spots of a workspace or a database, seen from outside any one of them: listing them
with a summary each (``hokuro spots``, the dashboard's Spots page), finding the blob folders
of Spots whose ledger is gone and removing such a folder. A part of
:class:`~hokuro.admin.maintenance.MaintenanceService` (class and static methods: they need
no open Spot), kept apart from its work on one Spot.

Why these choices:
- Each Spot is read through a read-only ledger (invariant 6): listing creates, migrates and
  writes nothing. A Spot that cannot be read is listed with its problem, so one broken
  ledger never hides the others.
- A workspace is named by its ``.hokuro`` folder or by the project folder that holds it, so
  a command run in the project folder finds it.
- A blob folder is removed whole only when no ledger of its name sits beside it (a "zombie"
  Spot); a live Spot's blobs go through its records (``clear``), records first. A blob
  folder that is a link is neither listed as a zombie nor removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, HokuroError, LedgerError
from ..model.redact import mask_secrets

if TYPE_CHECKING:
    from .maintenance import MaintenanceService

#: The folder of a project that holds its Spots: ``<name>.db`` and ``blobs/<name>/``.
WORKSPACE_DIR = ".hokuro"


@dataclass(slots=True)
class SpotSummary:
    """One Spot of a workspace, as ``hokuro spots`` lists it."""

    name: str
    #: The ledger file, or the database URL (password masked) of a Spot in PostgreSQL.
    ledger: Path | str
    #: Its blob folder, or the blob store its ledger records (for a Spot in PostgreSQL).
    blobs: Path | str | None
    #: Bytes of the ledger file (with its write-ahead log); None for a database.
    ledger_size: int | None
    records: int | None = None
    failed: int | None = None
    size: int | None = None
    last_activity: float | None = None
    #: Why the ledger could not be read, when it could not.
    problem: str | None = None

    def take(self, summary: dict[str, Any]) -> None:
        """Its figures from :meth:`MaintenanceService.summary`."""
        self.records, self.failed = summary["records"], summary["failed"]
        self.size, self.last_activity = summary["size"], summary["last_activity"]


# -- the Spots half of the service -----------------------------------------------------------

class Spots:
    """The Spots half of :class:`~hokuro.admin.maintenance.MaintenanceService` (it has the
    factories ``from_path`` and ``from_target``)."""

    from_path: Callable[..., MaintenanceService]
    from_target: Callable[..., MaintenanceService]

    @classmethod
    def scan_spots(cls, workspace_dir: str | os.PathLike[str]) -> list[SpotSummary]:
        """The Spots of a workspace (``.hokuro`` or the project folder holding it), each
        read through a read-only ledger: nothing is created, migrated or written."""
        workspace = cls.workspace_folder(workspace_dir)
        spots = []
        for db in sorted(workspace.glob("*.db")):
            if not db.is_file():
                continue
            blobs = workspace / "blobs" / db.stem
            wal = db.with_name(db.name + "-wal")
            ledger_size = db.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)
            entry = SpotSummary(db.stem, db.absolute(),
                                blobs.absolute() if blobs.is_dir() else None, ledger_size)
            try:
                with cls.from_path(db, blobs, read_only=True) as service:
                    summary = service.summary()
            except HokuroError as exc:
                entry.problem = str(exc)
            else:
                entry.take(summary)
            spots.append(entry)
        return spots

    @classmethod
    def scan_database(cls, url: str) -> list[SpotSummary]:
        """The Spots of a PostgreSQL database, each read through a read-only ledger: nothing
        is created, migrated or written. A ledger of schema 1 that no Spot adopted yet is
        listed with the name ``(schema 1)``."""
        from ..store.ledger.postgres import PostgresLedger

        where = mask_secrets(url)
        spots = []
        for name in PostgresLedger.spots_in(url):
            entry = SpotSummary(name or "(schema 1)", where, None, None)
            try:
                with cls.from_target(url, spot=name, read_only=True) as service:
                    summary = service.summary()
                    entry.blobs = service.blobs.describe() if service.blobs_known else None
            except HokuroError as exc:
                entry.problem = str(exc)
            else:
                entry.take(summary)
            spots.append(entry)
        return spots

    @staticmethod
    def workspace_folder(path: str | os.PathLike[str]) -> Path:
        """The workspace at ``path`` (a ``.hokuro`` folder or the project folder that holds
        one); an error that says what to give when there is none."""
        workspace = _workspace_folder(Path(path))
        if not workspace.is_dir():
            raise LedgerError(
                f"no hokuro workspace at {workspace.absolute()}; run this in your project "
                f"folder (the one that holds {WORKSPACE_DIR}) or give the folder that holds "
                "the Spots")
        return workspace

    @staticmethod
    def scan_orphan_projects(workspace_dir: str | os.PathLike[str]) -> list[Path]:
        """Blob folders ``<workspace>/blobs/<name>`` with no ledger ``<workspace>/<name>.db``
        ("zombie" Spots). ``workspace_dir`` is the ``.hokuro`` folder or the project folder
        that holds it. Reads only."""
        workspace = _workspace_folder(Path(workspace_dir))
        root = workspace / "blobs"
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir()
                      if p.is_dir() and not p.is_symlink()
                      and not (workspace / f"{p.name}.db").exists())

    @staticmethod
    def delete_project_storage(path: str | os.PathLike[str]) -> None:
        """Remove a Spot's blob folder and everything in it. Refused while the Spot's
        ledger still exists beside it (remove its records with ``clear`` instead)."""
        folder = Path(path)
        if folder.is_symlink() or not folder.is_dir():
            raise ConfigurationError(f"{folder} is not a blob folder")
        ledger = folder.parent.parent / f"{folder.name}.db"
        if folder.parent.name == "blobs" and ledger.exists():
            raise ConfigurationError(
                f"{folder} belongs to the ledger {ledger}; use hokuro clear to remove its "
                "tasks")
        shutil.rmtree(folder)


# -- small pieces ----------------------------------------------------------------------------

def _workspace_folder(path: Path) -> Path:
    if not (path / "blobs").is_dir() and (path / WORKSPACE_DIR).is_dir():
        return path / WORKSPACE_DIR
    return path
