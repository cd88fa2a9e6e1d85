#!lua
-- Compare-and-set of a card plus the append of its history entry. Every check
-- comes before the first write: Redis does not roll back a script.
-- KEYS[1] card hash, KEYS[2] its history list (same hash tag)
-- ARGV[1] expected version, ARGV[2] card JSON, ARGV[3] history entry JSON
-- Returns 1 if applied, 0 on a version conflict (or a missing card).
local v = redis.call('HGET', KEYS[1], 'v')
if not v or v ~= ARGV[1] then
  return 0
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', tostring(n + 1), 'd', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
return 1
