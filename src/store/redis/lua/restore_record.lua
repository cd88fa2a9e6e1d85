#!lua
-- Creates a card's record as an export wrote it, unless it exists or its
-- card does not.
-- KEYS[1] card hash, KEYS[2] the record (same hash tag)
-- ARGV[1] value, ARGV[2] ms left ('' for no expiry).
-- Returns 1 if created, 0 if not.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[2], ARGV[1])
else
  local ms = tonumber(ARGV[2])
  if not ms or ms < 1 then
    return redis.error_reply('restore_record: bad ms ' .. ARGV[2])
  end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return 1
