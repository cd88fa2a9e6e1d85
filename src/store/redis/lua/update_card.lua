#!lua
-- Compare-and-set of a card, plus (optionally) the append of its history
-- entry and the records that belong with the change (idempotency outcomes,
-- purchases). Every check comes before the first write: Redis does not roll
-- back a script.
-- KEYS[1] card hash, KEYS[2] its history list, KEYS[3] the change stream
--   of the card's slot (docs/events.md), KEYS[4..] record keys (all in the
--   card's slot)
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
--   as the event carries it (JSON, docs/events.md; "" with no events);
--   then per record: its value, and its ms (for 'F'; '' otherwise)
-- Returns 1 if applied, 0 on a version conflict (or a missing card, an
-- outcome that exists already, or a record to keep that has expired).
local v = redis.call('HGET', KEYS[1], 'v')
if not v or v ~= ARGV[1] then
  return 0
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. KEYS[1])
end
-- The TTL goes to SET as given: a number read by Lua could come back as
-- '1e+14', which SET refuses (after the first write).
local ttl = tonumber(ARGV[4] or '0')
local records = #KEYS - 3
local flags = ARGV[5] or ''
local modes = ARGV[6] or ''
if not ttl or #ARGV ~= 9 + 2 * records or #flags ~= records or #modes ~= records then
  return redis.error_reply('update_card: records and values do not match')
end
-- SET refuses an expiry past its range: refuse here, before any write.
if ttl < 0 or ttl > 1e12 then
  return redis.error_reply('update_card: record TTL out of range')
end
local events = tonumber(ARGV[7])
if not events or events < 0 then
  return redis.error_reply('update_card: events length not a number')
end
-- XADD on a key of another type would fail after the card was written.
if events > 0 and ARGV[3] ~= '' then
  local kind = redis.call('TYPE', KEYS[3])['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('CORRUPT change stream ' .. KEYS[3] .. ' is a ' .. kind)
  end
end
for i = 1, records do
  local exists = redis.call('EXISTS', KEYS[i + 3]) == 1
  if string.sub(flags, i, i) == '1' and exists then
    return 0
  end
  local mode = string.sub(modes, i, i)
  if mode == 'K' and not exists then
    return 0
  end
  if mode == 'F' and not tonumber(ARGV[9 + 2 * i]) then
    return redis.error_reply('update_card: a record without its ms')
  end
end
redis.call('HSET', KEYS[1], 'v', tostring(n + 1), 'd', ARGV[2])
if ARGV[3] ~= '' then
  -- The entry's sequence number: its index in the list plus the entries
  -- the archive has taken off the list's head (`hb`, docs/redis.md).
  local base = tonumber(redis.call('HGET', KEYS[1], 'hb') or '0') or 0
  local seq = string.format('%d', base + redis.call('RPUSH', KEYS[2], ARGV[3]) - 1)
  if events > 0 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
      'v', '1', 'id', ARGV[8] .. ':' .. seq, 'card', ARGV[8],
      'kind', 'history', 'seq', seq, 'e', ARGV[9])
  end
end
for i = 1, records do
  local key = KEYS[i + 3]
  local value = ARGV[8 + 2 * i]
  local mode = string.sub(modes, i, i)
  if mode == 'K' then
    redis.call('SET', key, value, 'KEEPTTL')
  elseif mode == 'F' then
    redis.call('SET', key, value, 'PX', ARGV[9 + 2 * i])
  elseif ttl > 0 then
    redis.call('SET', key, value, 'EX', ARGV[4])
  else
    redis.call('SET', key, value)
  end
end
return 1
