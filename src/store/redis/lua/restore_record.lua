#!lua
-- Creates a card's record as an export wrote it, unless it exists or its
-- card does not.
-- KEYS[1] card hash, KEYS[2] the card's record set (same hash tag)
-- ARGV[1] the record's name, ARGV[2] value, ARGV[3] ms left ('' for no
-- expiry).
-- Returns 1 if created, 0 if not.
-- Every key is checked first (Redis does not roll back a script): a key
-- of another type is refused with CORRUPT, nothing written.
local now = records_now()
local at = 0
if ARGV[3] ~= '' then
  local ms = tonumber(ARGV[3])
  if not ms or ms < 1 or ms > 1e15 then
    return redis.error_reply('restore_record: bad ms ' .. ARGV[3])
  end
  at = now + ms
end
local card = redis.call('TYPE', KEYS[1])['ok']
if card == 'none' then
  return 0
end
if card ~= 'hash' then
  return redis.error_reply('CORRUPT card ' .. KEYS[1] .. ' is a ' .. card .. ', not a hash')
end
local set = redis.call('TYPE', KEYS[2])['ok']
if set ~= 'none' and set ~= 'hash' then
  return redis.error_reply('CORRUPT record set ' .. KEYS[2] .. ' is a ' .. set .. ', not a hash')
end
if records_get(KEYS[2], ARGV[1], now) then
  return 0
end
local pttl = redis.call('PTTL', KEYS[2])
records_put(KEYS[2], ARGV[1], ARGV[2], at)
records_keep(KEYS[2], pttl, at)
return 1
