#!lua flags=no-writes
-- An index entry's owner and age by this Redis server's clock (TIME).
-- KEYS[1] the index entry (hash: owner, since)
-- Returns {} when absent, else {owner, since, now} (ms; the caller takes
-- the age, and judges a malformed `since`).
local cur = redis.call('HMGET', KEYS[1], 'owner', 'since')
if not cur[1] then
  return {}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {cur[1], cur[2] or '0', tostring(now)}
