#!lua
-- Creates a card only if it does not exist (existing cards keep their state).
-- KEYS[1] card hash; ARGV[1] the card's JSON. Returns 1 if created, 0 if not.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[1])
return 1
