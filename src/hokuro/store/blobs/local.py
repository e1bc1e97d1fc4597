"""Blob store in a local folder: ``.hokuro/blobs/<spot>/``.

Writes go to a temporary file in the target folder, are flushed and fsynced, then renamed
over the final name, so a reader sees either nothing or the whole blob (invariant 1).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ...errors import BlobError, BlobMissing, UnsafeName
from .base import BlobInfo, BlobStorageBase
from .names import check_ref

#: Suffix of temporary files; ``clean_temp`` removes old ones left by a crash mid-write.
TEMP_SUFFIX = ".spot_tmp"


class LocalBlobs(BlobStorageBase):
    """Blobs as files under ``root``."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(root).absolute()
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BlobError(
                    f"cannot make the blob folder {self.root} ({exc.strerror}: {exc.filename}); "
                    "choose a writable workspace= or blobs= folder") from exc
        self._made_dirs: set[str] = set()
        # Folders already checked to resolve inside the root. A blob ref names one of a few
        # hundred folders, and resolving a path costs a stat per component: checking each
        # folder once keeps a 1 MiB blob hit from spending ~50 µs on stats.
        self._safe_dirs: set[str] = set()

    def path_of(self, ref: str) -> Path:
        """The file of ``ref``; refuses any reference that would resolve outside the root."""
        path = self.root.joinpath(*check_ref(ref).split("/"))
        # check_ref already forbids '..' and absolute parts; this guards symlinked folders.
        parent = str(path.parent)
        if parent not in self._safe_dirs:
            if not path.resolve().is_relative_to(self.root.resolve()):
                raise UnsafeName(f"blob reference {ref!r} resolves outside {self.root}")
            if path.parent.is_dir():
                self._safe_dirs.add(parent)
        elif path.is_symlink() and not path.resolve().is_relative_to(self.root.resolve()):
            raise UnsafeName(f"blob reference {ref!r} resolves outside {self.root}")
        return path

    def save(self, ref: str, data: bytes) -> str:
        path = self.path_of(ref)
        try:
            try:
                self._write(path, data)
            except FileNotFoundError:
                # The folder was removed under us (clear / gc); make it again once.
                self._made_dirs.discard(str(path.parent))
                self._write(path, data)
        except OSError as exc:
            # Any fault of the folder (a file where a folder should be, no space, no
            # permission) is a BlobError, which the call path records as the task's failure.
            raise BlobError(f"cannot write blob {ref!r} under {self.root}: {exc}") from exc
        return ref

    def _write(self, path: Path, data: bytes) -> None:
        parent = path.parent
        if str(parent) not in self._made_dirs:
            parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(str(parent))
        tmp = parent / f".{path.name}.{os.urandom(6).hex()}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def load(self, ref: str) -> bytes:
        try:
            with open(self.path_of(ref), "rb") as handle:
                return handle.read()
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {ref!r} is not in {self.root}") from exc
        except OSError as exc:
            raise BlobError(f"cannot read blob {ref!r} under {self.root}: {exc}") from exc

    def delete(self, ref: str) -> bool:
        try:
            self.path_of(ref).unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BlobError(f"cannot remove blob {ref!r} under {self.root}: {exc}") from exc

    def _walk(self) -> Iterator[tuple[Path, os.stat_result]]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != "files"] if dirpath == str(self.root) \
                else dirnames
            for filename in filenames:
                path = Path(dirpath, filename)
                try:
                    yield path, path.stat()
                except FileNotFoundError:
                    continue

    def list_blobs(self) -> Iterator[BlobInfo]:
        for path, stat in self._walk():
            if path.name.endswith(TEMP_SUFFIX) or path.name.startswith("."):
                continue
            yield BlobInfo(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime)

    def clean_temp(self, max_age_seconds: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        removed = 0
        for path, stat in self._walk():
            if path.name.endswith(TEMP_SUFFIX) and now - stat.st_mtime >= max_age_seconds:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def files_dir(self, ref: str) -> Path:
        """A folder for a task's own files (``ctx.dir``), created on first use."""
        path = self.path_of(ref)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def describe(self) -> str:
        return str(self.root)
