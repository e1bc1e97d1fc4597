"""Blob stores: where large results live. :func:`open_blobs` picks one for a path or URL."""

from __future__ import annotations

import os

from ...errors import ConfigurationError
from .base import BlobInfo, BlobStorageBase

__all__ = ["BlobInfo", "BlobStorageBase", "open_blobs"]


def open_blobs(blobs: str | os.PathLike[str] | BlobStorageBase, *, create: bool = True
               ) -> BlobStorageBase:
    """A blob store for ``blobs``: a :class:`BlobStorageBase` (used as is), a folder path
    or ``file://`` URL, or an ``s3://bucket/prefix`` URL."""
    if isinstance(blobs, BlobStorageBase):
        return blobs
    if isinstance(blobs, os.PathLike):
        blobs = os.fspath(blobs)
    if not isinstance(blobs, str):
        raise ConfigurationError(
            f"blobs= takes a folder, a URL or a BlobStorageBase object, not "
            f"{type(blobs).__name__}"
        )
    if blobs.startswith("s3://"):
        from .s3 import S3Blobs

        return S3Blobs(blobs)
    if blobs.startswith("file://"):
        blobs = blobs[len("file://"):]
    elif "://" in blobs:
        raise ConfigurationError(
            f"blobs URL {blobs.split('://')[0]}:// is not supported; use a folder path, "
            "file:///path or s3://bucket/prefix"
        )
    from .local import LocalBlobs

    return LocalBlobs(blobs, create=create)
