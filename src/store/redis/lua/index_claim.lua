#!lua
-- Compare-and-set of an index entry's owner.
-- KEYS[1] the index entry (hash: owner, since)
-- ARGV[1] '0' expect absent / '1' expect ARGV[2] as owner
-- ARGV[3] the new owner, ARGV[4] now (ms since the epoch)
-- Returns {1} when claimed, else {0, owner, since} ({0} when absent).
local cur = redis.call('HMGET', KEYS[1], 'owner', 'since')
local owner = cur[1]
local matches
if ARGV[1] == '0' then
  matches = not owner
else
  matches = owner and owner == ARGV[2]
end
if not matches then
  if owner then
    return {0, owner, cur[2] or '0'}
  end
  return {0}
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'since', ARGV[4])
return {1}
