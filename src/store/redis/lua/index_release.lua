#!lua
-- Delete-if-owner. KEYS[1] the index entry; ARGV[1] the owner.
-- Returns 1 if deleted.
-- The HGET reads the only key written: a key of another type fails it with
-- WRONGTYPE before the DEL (a foreign value is not ours to delete).
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
