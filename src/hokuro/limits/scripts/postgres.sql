-- Limit state in PostgreSQL: shared by every host that reaches the database.
-- Each operation is one statement, a call of a PL/pgSQL function that locks the limiter's
-- rows in key order (callers pass keys sorted, so deciders never deadlock), reads
-- clock_timestamp() once the locks are held, and does gcra.py's arithmetic line for line.
-- A plain INSERT ... ON CONFLICT cannot do it: it decides row by row, and a limiter with
-- several limits must grant all of them or none.
-- Functions carry a version suffix; a changed body gets a new name, so processes of two
-- hokuro versions never call each other's.

-- name: installed
SELECT to_regproc('hokuro_limit_decide_v1') IS NOT NULL

-- name: schema
SELECT pg_advisory_xact_lock(hashtext('hokuro_limits'));

CREATE TABLE IF NOT EXISTS hokuro_limits (
    key text PRIMARY KEY,
    tat double precision NOT NULL DEFAULT 0,
    held double precision NOT NULL DEFAULT 0,
    held_until double precision NOT NULL DEFAULT 0
);

CREATE OR REPLACE FUNCTION hokuro_limit_lock_v1(p_keys text[])
RETURNS SETOF hokuro_limits LANGUAGE plpgsql AS $fn$
DECLARE
    v_row hokuro_limits;
    v_key text;
BEGIN
    FOREACH v_key IN ARRAY p_keys LOOP
        SELECT * INTO v_row FROM hokuro_limits WHERE key = v_key FOR UPDATE;
        IF NOT FOUND THEN
            -- a key seen for the first time starts rested
            INSERT INTO hokuro_limits (key) VALUES (v_key) ON CONFLICT (key) DO NOTHING;
            SELECT * INTO v_row FROM hokuro_limits WHERE key = v_key FOR UPDATE;
        END IF;
        RETURN NEXT v_row;
    END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION hokuro_limit_now_v1() RETURNS double precision
LANGUAGE sql VOLATILE AS $fn$ SELECT extract(epoch FROM clock_timestamp())::double precision $fn$;

CREATE OR REPLACE FUNCTION hokuro_limit_decide_v1(
    p_keys text[], p_increments double precision[], p_tolerances double precision[],
    p_reserve boolean, p_epsilon double precision,
    OUT granted boolean, OUT wait double precision, OUT decided_at double precision,
    OUT tats double precision[], OUT helds double precision[])
LANGUAGE plpgsql AS $fn$
DECLARE
    v_rows hokuro_limits[];
    v_tat double precision;
BEGIN
    v_rows := ARRAY(SELECT l FROM hokuro_limit_lock_v1(p_keys) AS l);
    decided_at := hokuro_limit_now_v1();
    wait := 0;
    tats := '{}';
    helds := '{}';
    FOR i IN 1 .. cardinality(p_keys) LOOP
        v_tat := greatest(v_rows[i].tat, decided_at) + p_increments[i];
        wait := greatest(wait, v_tat - p_tolerances[i] - decided_at);
        tats := tats || v_tat;
        helds := helds || v_rows[i].held;
    END LOOP;
    granted := wait <= p_epsilon OR p_reserve;
    IF wait <= p_epsilon THEN
        wait := 0;
    END IF;
    IF granted THEN
        UPDATE hokuro_limits AS l SET tat = n.tat
        FROM unnest(p_keys, tats) AS n(key, tat) WHERE l.key = n.key;
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION hokuro_limit_hold_v1(
    p_keys text[], p_tolerances double precision[], p_seconds double precision)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_rows hokuro_limits[];
    v_now double precision;
    v_until double precision;
    v_shift double precision;
BEGIN
    v_rows := ARRAY(SELECT l FROM hokuro_limit_lock_v1(p_keys) AS l);
    v_now := hokuro_limit_now_v1();
    v_until := v_now + p_seconds;
    FOR i IN 1 .. cardinality(p_keys) LOOP
        v_shift := greatest(0, v_until - greatest(v_now, v_rows[i].held_until));
        UPDATE hokuro_limits SET
            tat = greatest(greatest(v_rows[i].tat, v_now) + v_shift, v_until + p_tolerances[i]),
            held = v_rows[i].held + v_shift,
            held_until = greatest(v_rows[i].held_until, v_until)
        WHERE key = p_keys[i];
    END LOOP;
END
$fn$;

-- name: decide
SELECT granted, wait, decided_at, tats, helds FROM hokuro_limit_decide_v1(%s, %s, %s, %s, %s)

-- name: held
SELECT coalesce(array_agg(coalesce(l.held, 0) ORDER BY k.i), '{}')
FROM unnest(%s::text[]) WITH ORDINALITY AS k(key, i) LEFT JOIN hokuro_limits AS l USING (key)

-- name: hold
SELECT hokuro_limit_hold_v1(%s, %s, %s)

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
