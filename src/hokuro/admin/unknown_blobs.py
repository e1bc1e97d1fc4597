"""The stand-in for a blob store nobody named: a service over a database URL given without
``blobs=``, whose Spot never recorded where its blobs live, holds one. Its own module because
the service (:mod:`hokuro.admin.maintenance`) and its removing half
(:mod:`hokuro.admin.removing`) both need it.

Why these choices:
- A service without its blob store still opens: records, inline results and logs read as
  ever; a result or log in a blob gets a placeholder that says why it was not read.
- What needs a blob fails when it is asked for, with the fix (``blobs=``, ``--blobs`` or
  ``HOKURO_BLOBS``), never earlier. Garbage collection refuses up front with these words,
  and removal refuses while records name blobs: removing those records would orphan their
  blobs for good.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import BlobError
from ..store.blobs import BlobInfo, BlobStorageBase


class _UnknownBlobs(BlobStorageBase):
    """Stands for a blob store nobody named (a database URL given without ``blobs=``)."""

    kind = "unknown"
    _WHY = ("the blob store of this ledger is not known (its Spot has not recorded it: "
            "open the Spot once with this hokuro version); give it as blobs= "
            "(on the command line: --blobs URL or the HOKURO_BLOBS variable)")

    def save(self, ref: str, data: bytes) -> str:
        raise BlobError(self._WHY)

    def load(self, ref: str) -> bytes:
        raise BlobError(self._WHY)

    def delete(self, ref: str) -> bool:
        raise BlobError(self._WHY)

    def list_blobs(self) -> Iterator[BlobInfo]:
        raise BlobError(self._WHY)

    def describe(self) -> str:
        return "(unknown blob store)"
