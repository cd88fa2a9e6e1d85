#!lua
-- Compare-and-set of an index entry's owner, stamped with this Redis
-- server's clock (TIME), so that a claim's age never depends on the clocks
-- of the server instances that made and judge it.
-- KEYS[1] the index entry (hash: owner, since)
-- ARGV[1] '0' expect absent / '1' expect ARGV[2] as owner
-- ARGV[3] the new owner, ARGV[4] ms until the entry expires ('' or absent:
--   never; a PurchaseId's entry lives as long as its outcome, docs/redis.md)
-- Returns {1} when claimed, else {0, owner, since, now} ({0} when absent).
local cur = redis.call('HMGET', KEYS[1], 'owner', 'since')
local owner = cur[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local matches
if ARGV[1] == '0' then
  matches = not owner
else
  matches = owner and owner == ARGV[2]
end
if not matches then
  if owner then
    return {0, owner, cur[2] or '0', tostring(now)}
  end
  return {0}
end
-- Checked before the HSET: PEXPIRE refuses anything but an integer in
-- range, and refused after the HSET it would leave an entry that never
-- expires (Redis does not roll back a script). The entry itself is a hash
-- or absent, or the HMGET above failed with WRONGTYPE before any write.
local ttl = ARGV[4] or ''
if ttl ~= '' and (not string.match(ttl, '^%d+$') or tonumber(ttl) < 1 or tonumber(ttl) > 1e15) then
  return redis.error_reply('index_claim: TTL not a whole number of ms from 1 to 1e15')
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'since', tostring(now))
if ttl ~= '' then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1}
