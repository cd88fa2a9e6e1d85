#!lua flags=no-writes
-- The live records of a card's record set, with their time left.
-- KEYS[1] the record set
-- Returns {name, value, ms left (-1: no expiry), name, value, ...}.
local now = records_now()
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local at, value = records_split(all[i + 1])
  if not at then
    return redis.error_reply('CORRUPT record ' .. all[i] .. ' of ' .. KEYS[1])
  end
  if at == 0 or at > now then
    out[#out + 1] = all[i]
    out[#out + 1] = value
    out[#out + 1] = (at == 0) and -1 or (at - now)
  end
end
return out
