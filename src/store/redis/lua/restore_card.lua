#!lua
-- Creates a card as an export wrote it, with its history, unless a card
-- with that number exists (an import never overwrites).
-- KEYS[1] card hash, KEYS[2] its history list (same hash tag)
-- ARGV[1] the card, ARGV[2..] its history entries, oldest first (both in
--   the stored encoding, src/store/codec.rs).
-- Returns 1 if created, 0 if the card existed.
-- Every key written is checked first (Redis does not roll back a script):
-- a key of another type is refused with CORRUPT, nothing written.
local card = redis.call('TYPE', KEYS[1])['ok']
if card == 'hash' then
  return 0
end
if card ~= 'none' then
  return redis.error_reply('CORRUPT card ' .. KEYS[1] .. ' is a ' .. card .. ', not a hash')
end
local history = redis.call('TYPE', KEYS[2])['ok']
if history ~= 'none' and history ~= 'list' then
  -- A foreign value is not ours to delete.
  return redis.error_reply('CORRUPT history ' .. KEYS[2] .. ' is a ' .. history .. ', not a list')
end
-- A history without its card is a leftover: the card's own replaces it.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[1])
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
return 1
