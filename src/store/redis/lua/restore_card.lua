#!lua
-- Creates a card as an export wrote it, with its history, unless a card
-- with that number exists (an import never overwrites).
-- KEYS[1] card hash, KEYS[2] its history list (same hash tag)
-- ARGV[1] the card, ARGV[2..] its history entries, oldest first (both in
--   the stored encoding, src/store/codec.rs).
-- Returns 1 if created, 0 if the card existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- A history without its card is a leftover: the card's own replaces it.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[1])
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
return 1
