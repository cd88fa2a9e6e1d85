#!lua
-- Compare-and-set of a contact record: create or update.
-- KEYS[1] contact hash (v: version, d: JSON; a fenced record that never
-- held a contact has v and no d)
-- ARGV[1] the expected version ('0': no record at all), ARGV[2] the JSON.
-- Returns 1 if applied, 0 on conflict.
-- The HGET reads the only key written: a key of another type fails it with
-- WRONGTYPE before anything is written (Redis does not roll back a script).
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then
  return 0
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', tostring(n + 1), 'd', ARGV[2])
return 1
