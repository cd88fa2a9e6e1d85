-- A card's records (docs/redis.md, ADR 0013) are the fields of one hash per
-- card (`…:card:{n}:recs`), so that a purchase costs a field, not two keys
-- with their own TTLs. Redis 7.0 has no expiry per field: each value is
-- '<expires>:<record>', expires in ms since the epoch by this server's clock
-- ('0': never). A record past its expiry reads as absent; writes sweep
-- expired fields (records_sweep), and the hash itself expires with its
-- latest record.

-- Now in ms since the epoch, and the microseconds of the second (a
-- number to draw a chance from).
local function records_now()
  local t = redis.call('TIME')
  local us = tonumber(t[2])
  return tonumber(t[1]) * 1000 + math.floor(us / 1000), us
end

-- A read of a key that the script may write later: a key of another type
-- (an operator's mistake, a foreign writer) fails this read, before any
-- write, and is refused with CORRUPT naming it (issue 26) — the read
-- itself is the type check, so a write costs no TYPE command per key.
-- Other errors go up as they are.
local function records_read(what, key, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then
      error({err = 'CORRUPT ' .. what .. ' ' .. key .. ' is of another type'})
    end
    error(reply)
  end
  return reply
end

-- The expiry and the record of a field's value; nil when malformed (only
-- digits before the ':': tonumber would also take 'inf' or '0x1p4').
local function records_split(raw)
  local _, sep, at = string.find(raw, '^(%d+):')
  if not sep then
    return nil
  end
  return tonumber(at), string.sub(raw, sep + 1)
end

-- A record and its ms left (-1: no expiry) at `now` (nil: read the clock
-- if needed); false when absent or expired (false, not nil: a nil would
-- end the array a script returns).
local function records_get(set, field, now)
  local raw = records_read('record set', set, 'HGET', set, field)
  if raw then
    local at, value = records_split(raw)
    if not at then
      error({err = 'CORRUPT record ' .. field .. ' of ' .. set})
    end
    if at == 0 then
      return value, -1
    end
    -- Readers that only read pass no time: the clock is read only when
    -- a record is found (a new purchase finds none).
    now = now or records_now()
    if at > now then
      return value, at - now
    end
  end
  return false
end

-- Writes a record expiring at `at` (ms since the epoch, 0: never).
local function records_put(set, field, value, at)
  redis.call('HSET', set, field, string.format('%d', at) .. ':' .. value)
end

-- The set outlives every record in it: called after writes with the
-- set's PTTL before them and the latest expiry written (0: a record that
-- never expires).
local function records_keep(set, pttl_before, latest)
  if latest == 0 then
    redis.call('PERSIST', set)
  elseif pttl_before == -2 then
    redis.call('PEXPIREAT', set, string.format('%d', latest))
  elseif pttl_before >= 0 then
    redis.call('PEXPIREAT', set, string.format('%d', latest), 'GT')
  end
end

-- Removes the expired fields among about `n` of the set's, found by an
-- HSCAN from `cursor` (any number: Redis masks it to a bucket). A large
-- set gives about `n` fields from that point; a small one (listpack
-- encoded: up to `hash-max-listpack-entries`, 128 in
-- deploy/redis/redis.conf) gives all of them. update_card sweeps about 4
-- fields per write of a card: a card that keeps buying carries about one
-- expired record for four live ones (inflow one field per write, outflow
-- 4 × the expired share), and an idle card loses them all when the set
-- expires. (HRANDFIELD costs about a microsecond per field on a large
-- set; HSCAN walks buckets in order.)
local function records_sweep(set, now, n, cursor)
  local found = redis.call('HSCAN', set, cursor, 'COUNT', n)[2]
  for i = 1, #found, 2 do
    local at = records_split(found[i + 1])
    if at and at ~= 0 and at <= now then
      redis.call('HDEL', set, found[i])
    end
  end
end
