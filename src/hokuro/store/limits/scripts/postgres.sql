-- Limit state in PostgreSQL: shared by every host that reaches the database.
-- Each operation is one statement, a call of a PL/pgSQL function that locks the limiter's
-- rows in key order (callers pass keys sorted, so deciders never deadlock), reads
-- clock_timestamp() once the locks are held, and does gcra.py's arithmetic line for line.
-- A plain INSERT ... ON CONFLICT cannot do it: it decides row by row, and a limiter with
-- several limits must grant all of them or none.
-- Functions carry a version suffix; a changed body gets a new name, so processes of two
-- hokuro versions never call each other's.

-- name: installed
SELECT to_regproc('hokuro_limit_decide_v2') IS NOT NULL

-- name: schema
SELECT pg_advisory_xact_lock(hashtext('hokuro_limits'));

CREATE TABLE IF NOT EXISTS hokuro_limits (
    key text PRIMARY KEY,
    tat double precision NOT NULL DEFAULT 0,
    held double precision NOT NULL DEFAULT 0,
    held_until double precision NOT NULL DEFAULT 0
);
-- v2: the end of the waiting line (see gcra.decide_all).
ALTER TABLE hokuro_limits ADD COLUMN IF NOT EXISTS queued double precision NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION hokuro_limit_now_v1() RETURNS double precision
LANGUAGE sql VOLATILE AS $fn$ SELECT extract(epoch FROM clock_timestamp())::double precision $fn$;

-- Lock one key's row and return its state; a key seen for the first time starts rested.
CREATE OR REPLACE FUNCTION hokuro_limit_lock_v2(
    p_key text, OUT tat double precision, OUT held double precision,
    OUT held_until double precision, OUT queued double precision)
LANGUAGE plpgsql AS $fn$
BEGIN
    SELECT l.tat, l.held, l.held_until, l.queued INTO tat, held, held_until, queued
    FROM hokuro_limits AS l WHERE l.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO hokuro_limits (key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
        SELECT l.tat, l.held, l.held_until, l.queued INTO tat, held, held_until, queued
        FROM hokuro_limits AS l WHERE l.key = p_key FOR UPDATE;
    END IF;
END
$fn$;

-- v2: a horizon (seconds ahead a place may be booked) where v1 took a boolean "reserve", and
-- the waiting line: p_ticket is the caller's place in it (NULL: it has none).
CREATE OR REPLACE FUNCTION hokuro_limit_decide_v2(
    p_keys text[], p_increments double precision[], p_tolerances double precision[],
    p_horizon double precision, p_ticket double precision[], p_epsilon double precision,
    OUT granted boolean, OUT wait double precision, OUT decided_at double precision,
    OUT tats double precision[], OUT helds double precision[])
LANGUAGE plpgsql AS $fn$
DECLARE
    v_state record;
    v_n integer := cardinality(p_keys);
    v_bases double precision[] := array_fill(0::double precision, ARRAY[v_n]);
    v_ends double precision[] := array_fill(0::double precision, ARRAY[v_n]);
    v_behind boolean := false;
BEGIN
    tats := array_fill(0::double precision, ARRAY[v_n]);
    helds := tats;
    FOR i IN 1 .. v_n LOOP
        v_state := hokuro_limit_lock_v2(p_keys[i]);
        tats[i] := v_state.tat;
        helds[i] := v_state.held;
        v_ends[i] := v_state.queued;
    END LOOP;
    decided_at := hokuro_limit_now_v1();  -- read once every lock is held
    wait := 0;
    FOR i IN 1 .. v_n LOOP
        v_bases[i] := greatest(tats[i], decided_at);
        -- places beyond the TAT whose time has not passed
        IF v_ends[i] > v_bases[i] + p_epsilon
                AND v_ends[i] - p_tolerances[i] > decided_at + p_epsilon THEN
            v_behind := true;
        END IF;
        tats[i] := v_bases[i] + p_increments[i];
        wait := greatest(wait, tats[i] - p_tolerances[i] - decided_at);
    END LOOP;
    granted := false;
    IF NOT (p_horizon > 0 AND v_behind AND p_ticket IS NULL) THEN
        IF wait <= p_epsilon THEN
            wait := 0;
            granted := true;
        ELSIF wait <= p_horizon THEN
            granted := true;
        END IF;
    END IF;
    IF granted THEN
        FOR i IN 1 .. v_n LOOP
            UPDATE hokuro_limits SET tat = tats[i] WHERE key = p_keys[i];
        END LOOP;
    ELSIF p_horizon > 0 THEN  -- a caller that waits: its place in the waiting line
        FOR i IN 1 .. v_n LOOP
            IF p_ticket IS NULL THEN
                tats[i] := greatest(v_ends[i], v_bases[i]) + p_increments[i];
                UPDATE hokuro_limits SET queued = tats[i] WHERE key = p_keys[i];
            ELSE
                tats[i] := p_ticket[i];
            END IF;
            wait := greatest(wait, tats[i] - p_tolerances[i] - decided_at);
        END LOOP;
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION hokuro_limit_hold_v2(
    p_keys text[], p_tolerances double precision[], p_seconds double precision)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_now double precision;
    v_until double precision;
    v_shift double precision;
    v_state record;
BEGIN
    FOR i IN 1 .. cardinality(p_keys) LOOP
        PERFORM hokuro_limit_lock_v2(p_keys[i]);
    END LOOP;
    v_now := hokuro_limit_now_v1();
    v_until := v_now + p_seconds;
    FOR i IN 1 .. cardinality(p_keys) LOOP
        v_state := hokuro_limit_lock_v2(p_keys[i]);
        v_shift := greatest(0, v_until - greatest(v_now, v_state.held_until));
        UPDATE hokuro_limits SET
            tat = greatest(greatest(v_state.tat, v_now) + v_shift, v_until + p_tolerances[i]),
            held = v_state.held + v_shift,
            held_until = greatest(v_state.held_until, v_until),
            queued = CASE WHEN v_state.queued > v_now THEN v_state.queued + v_shift
                          ELSE v_state.queued END
        WHERE key = p_keys[i];
    END LOOP;
END
$fn$;

-- name: decide
SELECT granted, wait, decided_at, tats, helds
FROM hokuro_limit_decide_v2(%s, %s, %s, %s, %s, %s)

-- name: held
SELECT coalesce(array_agg(coalesce(l.held, 0) ORDER BY k.i), '{}')
FROM unnest(%s::text[]) WITH ORDINALITY AS k(key, i) LEFT JOIN hokuro_limits AS l USING (key)

-- name: hold
SELECT hokuro_limit_hold_v2(%s, %s, %s)

-- name: refund
-- Row by row is right here: each key gives back its own part or keeps it.
WITH given AS (
    UPDATE hokuro_limits AS l SET tat = l.tat - r.increment
    FROM unnest(%s::text[], %s::double precision[], %s::double precision[])
        AS r(key, increment, receipt)
    WHERE l.key = r.key AND l.tat = r.receipt
    RETURNING 1
)
SELECT count(*) FROM given

-- name: now
SELECT hokuro_limit_now_v1()

-- name: usage_kept
-- Whether any limit was ever used in this database (readers never create the table).
SELECT to_regclass('hokuro_limits') IS NOT NULL

-- name: usage
-- Every key's state and the server's clock, for people (the dashboard).
SELECT key, tat, held, held_until, queued, extract(epoch FROM clock_timestamp())::float8
FROM hokuro_limits ORDER BY key
