-- Limit state in a small SQLite file shared by the processes of one host.
-- Decisions run inside BEGIN IMMEDIATE, so the read, the arithmetic (in Python, gcra.py) and
-- the write are one step that no other process can interleave.

-- name: schema
CREATE TABLE IF NOT EXISTS hokuro_limits (
    key TEXT PRIMARY KEY,
    tat REAL NOT NULL DEFAULT 0,
    held REAL NOT NULL DEFAULT 0,
    held_until REAL NOT NULL DEFAULT 0,
    queued REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- name: columns
SELECT name FROM pragma_table_info('hokuro_limits')

-- name: add_queued
-- Files made before the waiting line (hokuro 0.1 development) lack its column.
ALTER TABLE hokuro_limits ADD COLUMN queued REAL NOT NULL DEFAULT 0

-- name: read_state
SELECT tat, held, held_until, queued FROM hokuro_limits WHERE key = ?

-- name: write_tat
INSERT INTO hokuro_limits (key, tat) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat

-- name: write_queued
INSERT INTO hokuro_limits (key, queued) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET queued = excluded.queued

-- name: write_state
INSERT INTO hokuro_limits (key, tat, held, held_until, queued) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    tat = excluded.tat, held = excluded.held, held_until = excluded.held_until,
    queued = excluded.queued

-- name: usage
-- Every key's state, for people (the dashboard); read on a read-only connection.
SELECT key, tat, held, held_until, queued FROM hokuro_limits ORDER BY key
