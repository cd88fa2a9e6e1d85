#!lua flags=no-writes
-- Many cards as an export writes them, in one call (one Redis node only: a
-- cluster refuses keys of several slots in one script).
-- KEYS: card hash, its history list, card hash, its history list, ...
-- Returns one array per card: {d, entry...} ({} when the card has gone).
local out = {}
for i = 1, #KEYS, 2 do
  local d = redis.call('HGET', KEYS[i], 'd')
  local card = {}
  if d then
    card[1] = d
    for _, e in ipairs(redis.call('LRANGE', KEYS[i + 1], 0, -1)) do
      card[#card + 1] = e
    end
  end
  out[#out + 1] = card
end
return out
