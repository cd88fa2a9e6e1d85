#!lua
-- Compare-and-set of a card, plus (optionally) the append of its history
-- entry and the records that belong with the change (idempotency outcomes,
-- purchases). Every check comes before the first write: Redis does not roll
-- back a script.
-- KEYS[1] card hash, KEYS[2] its history list, KEYS[3..] record keys (all
--   with the card's hash tag)
-- ARGV[1] expected version, ARGV[2] card JSON, ARGV[3] history entry JSON
--   ("" for none), ARGV[4] record TTL in seconds (0: no expiry),
--   ARGV[5..] record values, one per record key
-- Returns 1 if applied, 0 on a version conflict (or a missing card).
local v = redis.call('HGET', KEYS[1], 'v')
if not v or v ~= ARGV[1] then
  return 0
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. KEYS[1])
end
local ttl = tonumber(ARGV[4] or '0')
if not ttl or (#KEYS - 2) ~= (#ARGV - 4) then
  return redis.error_reply('update_card: records and values do not match')
end
redis.call('HSET', KEYS[1], 'v', tostring(n + 1), 'd', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
end
for i = 3, #KEYS do
  if ttl > 0 then
    redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[i + 2])
  end
end
return 1
