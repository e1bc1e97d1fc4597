-- Limit state in Redis: one hash per key (tat, held, held_until), one script per operation,
-- so each operation is one atomic round trip on the server's own clock (TIME).
-- The arithmetic is gcra.py's, line for line; the conformance tests hold them together.
-- Numbers go back as text: Redis would turn Lua numbers into integers.
-- A key expires a minute after its TAT: by then it is rested, and a missing key reads as
-- rested, so limiters with many names leave nothing behind.

-- name: decide
-- KEYS: the limit keys. ARGV: reserve ("1"/"0"), epsilon, then increment, tolerance per key.
-- Returns: granted, wait, now, each key's new TAT, each key's held total.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local epsilon = tonumber(ARGV[2])
local tats, helds, wait = {}, {}, 0
for i = 1, #KEYS do
    local state = redis.call('HMGET', KEYS[i], 'tat', 'held')
    local tat = math.max(tonumber(state[1]) or 0, now) + tonumber(ARGV[1 + 2 * i])
    local late = tat - tonumber(ARGV[2 + 2 * i]) - now
    if late > wait then wait = late end
    tats[i] = tat
    helds[i] = state[2] or '0'
end
local granted = '0'
if wait <= epsilon then
    wait = 0
    granted = '1'
elseif ARGV[1] == '1' then
    granted = '1'
end
local reply = {granted, string.format('%.17g', wait), string.format('%.17g', now)}
for i = 1, #KEYS do
    local text = string.format('%.17g', tats[i])
    if granted == '1' then
        redis.call('HSET', KEYS[i], 'tat', text)
        redis.call('PEXPIREAT', KEYS[i], math.ceil((tats[i] + 60) * 1000))
    end
    reply[3 + i] = text
end
for i = 1, #KEYS do reply[3 + #KEYS + i] = helds[i] end
return reply

-- name: held
-- KEYS: the limit keys. Returns each key's held total.
local reply = {}
for i = 1, #KEYS do reply[i] = redis.call('HGET', KEYS[i], 'held') or '0' end
return reply

-- name: hold
-- KEYS: the limit keys. ARGV: seconds, then tolerance per key.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local hold_end = now + tonumber(ARGV[1])
for i = 1, #KEYS do
    local state = redis.call('HMGET', KEYS[i], 'tat', 'held', 'held_until')
    local tat = tonumber(state[1]) or 0
    local held = tonumber(state[2]) or 0
    local held_until = tonumber(state[3]) or 0
    local shift = math.max(0, hold_end - math.max(now, held_until))
    tat = math.max(math.max(tat, now) + shift, hold_end + tonumber(ARGV[1 + i]))
    redis.call('HSET', KEYS[i], 'tat', string.format('%.17g', tat),
               'held', string.format('%.17g', held + shift),
               'held_until', string.format('%.17g', math.max(held_until, hold_end)))
    redis.call('PEXPIREAT', KEYS[i], math.ceil((tat + 60) * 1000))
end
return 1

-- name: refund
-- KEYS: the limit keys. ARGV: increment, receipt per key. Returns how many took it back.
local given = 0
for i = 1, #KEYS do
    local tat = tonumber(redis.call('HGET', KEYS[i], 'tat'))
    if tat and tat == tonumber(ARGV[2 * i]) then
        redis.call('HSET', KEYS[i], 'tat', string.format('%.17g', tat - tonumber(ARGV[2 * i - 1])))
        given = given + 1
    end
end
return given
