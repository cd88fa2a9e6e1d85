#!lua flags=no-writes
-- A card's record stored before record sets (a string of its own) and its
-- time left, in one step.
-- KEYS[1] the record
-- Returns {value, ms left (-1: no expiry)}, or {} when it has expired.
local value = redis.call('GET', KEYS[1])
if not value then
  return {}
end
return {value, redis.call('PTTL', KEYS[1])}
