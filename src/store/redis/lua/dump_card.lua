#!lua flags=no-writes
-- A card as an export writes it: its JSON and its history, in one step.
-- KEYS[1] card hash, KEYS[2] its history list
-- Returns {d, entry...} ({} when the card has gone meanwhile).
local d = redis.call('HGET', KEYS[1], 'd')
if not d then
  return {}
end
local out = {d}
for _, e in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  out[#out + 1] = e
end
return out
