#!lua
-- Compare-and-set of a card, plus (optionally) the append of its history
-- entry and the records that belong with the change (idempotency outcomes,
-- purchases). Every check comes before the first write: Redis does not roll
-- back a script, so a command that failed after the card was written would
-- leave the new balance without its outcome, and a retry would apply it
-- again (issue 26). That includes the type of every key written: each is
-- read before the first write (the event's XADD is that first write), and
-- a key of another type (an operator's mistake, a foreign writer) fails
-- its read and is refused with CORRUPT naming it (`records_read`), before
-- anything is written. Records are fields of the card's record set
-- (records.lua).
-- KEYS[1] card hash, KEYS[2] its history list, KEYS[3] the change stream
--   of the card's slot (docs/events.md), with records: KEYS[4] the card's
--   record set (all in the card's slot)
-- ARGV[1] expected version, ARGV[2] the card (src/store/codec.rs),
--   ARGV[3] its history entry as the list keeps it (codec; "" for none), ARGV[4] record TTL in seconds (0: no expiry),
--   ARGV[5] one flag per record: '1' create-only (an operation's outcome:
--   if it exists already, the operation has been applied and nothing is
--   written), '0' set;
--   ARGV[6] one expiry mode per record: 'R' the TTL from now, 'K' keep the
--   record's expiry (the record must exist: an update never brings an
--   expired record back), 'F' in a number of ms;
--   ARGV[7] the change stream's approximate length ('0': no events),
--   ARGV[8] the card number (the event's card), ARGV[9] the history entry
--   as the event carries it (compact, docs/events.md; "" with no events);
--   then per record: its name, its value, and its ms (for 'F'; '' otherwise)
-- Returns 1 if applied, 0 on a version conflict (or a missing card, an
-- outcome that exists already, or a record to keep that has expired).
local current = records_read('card', KEYS[1], 'HMGET', KEYS[1], 'v', 'hb')
local v = current[1]
if not v or v ~= ARGV[1] then
  return 0
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. KEYS[1])
end
local ttl = tonumber(ARGV[4] or '0')
local set = KEYS[4]
local flags = ARGV[5] or ''
local modes = ARGV[6] or ''
local records = #flags
if not ttl or #KEYS ~= ((records > 0) and 4 or 3) or #ARGV ~= 9 + 3 * records or #modes ~= records then
  return redis.error_reply('update_card: records and values do not match')
end
-- Expiries stay exact integers (ms since the epoch, below 2^53).
if ttl < 0 or ttl > 1e12 then
  return redis.error_reply('update_card: record TTL out of range')
end
local events = tonumber(ARGV[7])
if not events or events < 0 then
  return redis.error_reply('update_card: events length not a number')
end
-- Each record's expiry (ms since the epoch, 0: never), settled before
-- any write.
local now, chance = records_now()
local expires = {}
for i = 1, records do
  local value, left = records_get(set, ARGV[7 + 3 * i], now)
  if string.sub(flags, i, i) == '1' and value then
    return 0
  end
  local mode = string.sub(modes, i, i)
  if mode == 'K' then
    if not value then
      return 0
    end
    expires[i] = (left < 0) and 0 or (now + left)
  elseif mode == 'F' then
    local ms = tonumber(ARGV[9 + 3 * i])
    if not ms or ms < 1 or ms > 1e15 then
      return redis.error_reply('update_card: a record without its ms')
    end
    expires[i] = now + ms
  else
    expires[i] = (ttl > 0) and (now + ttl * 1000) or 0
  end
end
-- The entry's sequence number: its index in the list once appended plus
-- the entries the archive has taken off the list's head (`hb`,
-- docs/redis.md).
local seq
if ARGV[3] ~= '' then
  local base = tonumber(current[2] or '0') or 0
  seq = string.format('%d', base + records_read('history', KEYS[2], 'LLEN', KEYS[2]))
end
-- The writes. The event goes first: XADD is the one write that can still
-- fail on a key of the right type (a stream whose last ID is the largest
-- there is), and failing first it leaves nothing written.
if seq and events > 0 then
  records_read('change stream', KEYS[3], 'XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
    'v', '1', 'id', ARGV[8] .. ':' .. seq, 'card', ARGV[8],
    'kind', 'history', 'seq', seq, 'e', ARGV[9])
end
redis.call('HSET', KEYS[1], 'v', tostring(n + 1), 'd', ARGV[2])
if seq then
  redis.call('RPUSH', KEYS[2], ARGV[3])
end
if records > 0 then
  local pttl = redis.call('PTTL', set)
  local latest = -1
  for i = 1, records do
    records_put(set, ARGV[7 + 3 * i], ARGV[8 + 3 * i], expires[i])
    if latest ~= 0 and (expires[i] == 0 or expires[i] > latest) then
      latest = expires[i]
    end
  end
  if latest ~= -1 then
    records_keep(set, pttl, latest)
  end
  -- Sweep about 4 fields a write (records.lua): a small set (a listpack,
  -- which HSCAN returns whole) with a chance of 4 in its size, a large one
  -- 16 fields every 4 writes of the card, from a cursor that visits every
  -- bucket in turn (7919 is odd: its multiples cover every residue).
  local encoding = redis.call('OBJECT', 'ENCODING', set)
  if encoding == 'hashtable' then
    if n % 4 == 0 then
      records_sweep(set, now, 16, string.format('%d', (n / 4) * 7919 % 1048576))
    end
  elseif encoding then
    local size = redis.call('HLEN', set)
    if chance % math.max(1, math.floor(size / 4)) == 0 then
      records_sweep(set, now, size, '0')
    end
  end
end
return 1
