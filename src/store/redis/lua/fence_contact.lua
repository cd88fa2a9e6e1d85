#!lua
-- Raises a contact record's version (creating a data-less record if there
-- is none) when it is still the expected one: a slow writer holding the old
-- version can no longer write. KEYS[1] contact hash; ARGV[1] the expected
-- version ('0': no record). Returns 1 if applied, 0 on conflict.
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
redis.call('HSET', KEYS[1], 'v', tostring(n + 1))
return 1
