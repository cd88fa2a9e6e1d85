#!lua
-- Create-if-absent or compare-and-set of a contact.
-- KEYS[1] contact hash; ARGV[1] '0' create only / '1' update; ARGV[2] the
-- expected version (update); ARGV[3] the contact JSON.
-- Returns 1 if applied, 0 on conflict.
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '0' then
  if v then
    return 0
  end
  redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[3])
  return 1
end
if not v or v ~= ARGV[2] then
  return 0
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', tostring(n + 1), 'd', ARGV[3])
return 1
