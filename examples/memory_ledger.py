"""A custom ledger: records in a dict, for one process. A worked example of ``hokuro.TaskDB``.

    spot = hokuro.Spot("demo", db=MemoryLedger())

Every write happens under one lock, which makes each method atomic, as the protocol asks.
The shared conformance suite (tests/test_ledger_conformance.py) runs against this class too.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable, Iterator

import hokuro
from hokuro.model.records import Claim, ClaimResult, Outcome, Record, StatRow, decide_claim


class MemoryLedger(hokuro.TaskDB):
    kind = "memory"

    def __init__(self) -> None:
        self._rows: dict[str, Record] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str) -> Record | None:
        return self.get(key)

    def get(self, key: str) -> Record | None:
        with self._lock:
            row = self._rows.get(key)
            return None if row is None else dataclasses.replace(row)

    def claim(self, claim: Claim) -> ClaimResult:
        with self._lock:
            current = self._rows.get(claim.key)
            outcome = decide_claim(current, claim)  # the one rule every ledger applies
            if outcome != "claimed":
                return ClaimResult(outcome, dataclasses.replace(current))
            row = current or Record(key=claim.key, fn=claim.fn, status="running",
                                    created_at=claim.now)
            previous = dataclasses.replace(row) if current else None
            row.status, row.fn, row.fn_path = "running", claim.fn, claim.fn_path
            row.ident, row.args, row.version = claim.ident, claim.args, claim.version
            row.owner, row.lease_until = claim.owner, claim.lease_until
            row.attempts += 1
            row.started_at, row.finished_at, row.updated_at = claim.now, None, claim.now
            self._rows[claim.key] = row
            return ClaimResult("claimed", previous, row.attempts)

    def renew(self, owner: str, keys: Iterable[str], lease_until: float) -> set[str]:
        held = set()
        with self._lock:
            for key in keys:
                row = self._rows.get(key)
                if row and row.owner == owner and row.status == "running":
                    row.lease_until = lease_until
                    held.add(key)
        return held

    def finish(self, key: str, owner: str, outcome: Outcome) -> bool:
        with self._lock:
            row = self._rows.get(key)
            if row is None or row.owner != owner or row.status != "running":
                return False  # the lease was lost: write nothing
            for field in ("status", "result", "blob", "codec", "content_type", "size",
                          "checksum", "error_type", "error", "error_fingerprint", "log",
                          "log_blob", "finished_at", "expires_at"):
                setattr(row, field, getattr(outcome, field))
            row.updated_at, row.lease_until = outcome.finished_at, None
            return True

    def find(self, *, fn=None, status=None, since=None, until=None, key_prefix=None,
             ident=None, error_fingerprint=None, expired_at=None, limit=None,
             full=False) -> Iterator[Record]:
        with self._lock:
            rows = sorted(self._rows.values(), key=lambda r: (r.updated_at, r.key),
                          reverse=True)
        wanted = {"fn": fn, "status": status, "ident": ident,
                  "error_fingerprint": error_fingerprint}
        count = 0
        for row in rows:
            if any(v is not None and getattr(row, k) != v for k, v in wanted.items()):
                continue
            if (since is not None and row.updated_at < since) or \
                    (until is not None and row.updated_at > until):
                continue
            if key_prefix is not None and not row.key.startswith(key_prefix):
                continue
            if expired_at is not None and (row.expires_at is None or
                                           row.expires_at > expired_at):
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield dataclasses.replace(row)

    def stats(self, fn: str | None = None, *, now: float | None = None) -> list[StatRow]:
        now = time.time() if now is None else now
        groups: dict[tuple[str, str], list[Record]] = {}
        with self._lock:
            for row in self._rows.values():
                if fn is None or row.fn == fn:
                    groups.setdefault((row.fn, row.status), []).append(row)
        def stale(r: Record) -> bool:  # past its lease if running, else past retention
            if r.status == "running":
                return r.lease_until is None or r.lease_until <= now
            return r.is_expired(now)

        # The size counts the stored arguments as well as the results.
        return [StatRow(f, s, len(rs), sum((r.size or 0) + len(r.args or b"") for r in rs),
                        sum(1 for r in rs if stale(r)), max(r.updated_at for r in rs))
                for (f, s), rs in sorted(groups.items())]

    def blob_refs(self) -> Iterator[str]:
        with self._lock:
            rows = list(self._rows.values())
        for row in rows:
            yield from (ref for ref in (row.blob, row.log_blob) if ref)

    def delete(self, keys: Iterable[str]) -> list[Record]:
        with self._lock:
            return [row for key in keys if (row := self._rows.pop(key, None)) is not None]

    def put(self, record: Record) -> None:
        with self._lock:
            self._rows[record.key] = dataclasses.replace(record)

    def close(self) -> None:
        pass
