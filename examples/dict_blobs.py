"""A custom blob store: blobs in a dict. A worked example of ``hokuro.BlobStorageBase``.

    spot = hokuro.Spot("demo", blobs=DictBlobs())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import hokuro
from hokuro.errors import BlobMissing
from hokuro.store.blobs import BlobInfo
from hokuro.store.blobs.names import check_ref


class DictBlobs(hokuro.BlobStorageBase):
    kind = "dict"

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def save(self, ref: str, data: bytes) -> str:
        # A dict assignment publishes the whole value at once: atomic visibility for free.
        with self._lock:
            self._blobs[check_ref(ref)] = (bytes(data), time.time())
        return ref

    def load(self, ref: str) -> bytes:
        with self._lock:
            try:
                return self._blobs[check_ref(ref)][0]
            except KeyError:
                raise BlobMissing(f"no blob {ref!r}") from None

    def delete(self, ref: str) -> bool:
        with self._lock:
            return self._blobs.pop(check_ref(ref), None) is not None

    def list_blobs(self) -> Iterator[BlobInfo]:
        with self._lock:
            items = list(self._blobs.items())
        for ref, (data, mtime) in items:
            yield BlobInfo(ref, len(data), mtime)
