#!lua
-- Delete-if-owner. KEYS[1] the index entry; ARGV[1] the owner.
-- Returns 1 if deleted.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
