-- Limit state in Redis: one string per key, "tat held held_until queued" (a KeyState; keys
-- written before the waiting line lack "queued", read as 0), one script
-- per operation, so each operation is one atomic round trip on the server's own clock (TIME).
-- The arithmetic is gcra.py's, line for line; the conformance tests hold them together.
-- Numbers are kept and sent back as text (%.17g, exact): Redis would turn Lua numbers into
-- integers. A string rather than a hash, because GET and SET with PX read and write the
-- state and its expiry in two commands instead of three: the decide script is every call's
-- cost. A key expires a minute after its TAT (or its line's end): by then it is rested, and a
-- missing key reads as rested, so limiters with many names leave nothing behind.

-- name: decide
-- KEYS: the limit keys. ARGV: the horizon (seconds ahead a place may be booked), "1" when the
-- caller shows a ticket (its place in the waiting line, see gcra.decide_all), then the
-- increment, tolerance and ticket place (0 without one) per key.
-- Returns one text, "granted wait now tat... held...": one reply is cheaper to send and to
-- parse than a list of them.
local epsilon = 1e-06  -- gcra.EPSILON
if redis.replicate_commands then redis.replicate_commands() end  -- TIME, then writes (< 5.0)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local horizon = tonumber(ARGV[1])
local ticketed = ARGV[2] == '1'
local tats, raws, bases, kepts, helds, ends = {}, {}, {}, {}, {}, {}
local wait, behind = 0, false
for i = 1, #KEYS do
    local state = redis.call('GET', KEYS[i])
    local tat, kept, held, queued = 0, '0 0', '0', '0'  -- kept: "held held_until", as read
    if state then
        tat, kept, held, queued = string.match(state, '^(%S+) ((%S+) %S+) ?(%S*)$')
        if queued == '' then queued = '0' end
    end
    raws[i] = state and tat or '0'
    tat = tonumber(tat)
    local base = math.max(tat, now)
    local queued_at = tonumber(queued)
    if queued_at > base + epsilon and queued_at - tonumber(ARGV[1 + 3 * i]) > now + epsilon then
        behind = true  -- places beyond the TAT whose time has not passed
    end
    tat = base + tonumber(ARGV[3 * i])
    local late = tat - tonumber(ARGV[1 + 3 * i]) - now
    if late > wait then wait = late end
    tats[i] = string.format('%.17g', tat)
    bases[i] = base
    kepts[i] = kept
    helds[i] = held
    ends[i] = queued
end
local granted = '0'
if not (horizon > 0 and behind and not ticketed) then
    if wait <= epsilon then
        wait = 0
        granted = '1'
    elseif wait <= horizon then
        granted = '1'
    end
end
if granted == '1' then
    for i = 1, #KEYS do
        local ttl = math.ceil((math.max(tonumber(tats[i]), tonumber(ends[i])) - now + 60) * 1000)
        redis.call('SET', KEYS[i], tats[i] .. ' ' .. kepts[i] .. ' ' .. ends[i], 'PX', ttl)
    end
elseif horizon > 0 then  -- a caller that waits: its place in the waiting line
    for i = 1, #KEYS do
        local place
        if ticketed then
            place = tonumber(ARGV[2 + 3 * i])
        else
            place = math.max(tonumber(ends[i]), bases[i]) + tonumber(ARGV[3 * i])
        end
        tats[i] = string.format('%.17g', place)
        local due = place - tonumber(ARGV[1 + 3 * i]) - now
        if due > wait then wait = due end
        if not ticketed then
            local ttl = math.ceil((math.max(tonumber(raws[i]), place) - now + 60) * 1000)
            redis.call('SET', KEYS[i], raws[i] .. ' ' .. kepts[i] .. ' ' .. tats[i], 'PX', ttl)
        end
    end
end
return string.format('%s %.17g %.17g ', granted, wait, now) .. table.concat(tats, ' ') .. ' '
    .. table.concat(helds, ' ')

-- name: held
-- KEYS: the limit keys. Returns "held..." for the keys.
local helds = {}
for i = 1, #KEYS do
    local state = redis.call('GET', KEYS[i])
    helds[i] = state and string.match(state, '^%S+ (%S+)') or '0'
end
return table.concat(helds, ' ')

-- name: hold
-- KEYS: the limit keys. ARGV: seconds, then tolerance per key.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local hold_end = now + tonumber(ARGV[1])
for i = 1, #KEYS do
    local state = redis.call('GET', KEYS[i]) or '0 0 0 0'
    local tat, held, held_until, queued = string.match(state, '^(%S+) (%S+) (%S+) ?(%S*)$')
    tat, held, held_until = tonumber(tat), tonumber(held), tonumber(held_until)
    queued = tonumber(queued) or 0
    local shift = math.max(0, hold_end - math.max(now, held_until))
    tat = math.max(math.max(tat, now) + shift, hold_end + tonumber(ARGV[1 + i]))
    if queued > now then queued = queued + shift end
    redis.call('SET', KEYS[i], string.format('%.17g %.17g %.17g %.17g', tat, held + shift,
               math.max(held_until, hold_end), queued),
               'PX', math.ceil((math.max(tat, queued) - now + 60) * 1000))
end
return 1

-- name: refund
-- KEYS: the limit keys. ARGV: increment, receipt per key. Returns how many took it back.
local given = 0
for i = 1, #KEYS do
    local state = redis.call('GET', KEYS[i])
    if state then
        local tat, rest = string.match(state, '^(%S+) (.*)$')
        tat = tonumber(tat)
        if tat == tonumber(ARGV[2 * i]) then
            local text = string.format('%.17g', tat - tonumber(ARGV[2 * i - 1]))
            local ttl = redis.call('PTTL', KEYS[i])
            if ttl > 0 then
                redis.call('SET', KEYS[i], text .. ' ' .. rest, 'PX', ttl)
            else
                redis.call('SET', KEYS[i], text .. ' ' .. rest)
            end
            given = given + 1
        end
    end
end
return given
