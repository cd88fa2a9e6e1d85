#!lua
-- Takes a card's archived history entries off the head of its list in
-- Redis, keeping at least the newest ARGV[2] (the hot window), and raises
-- the card's `hb` (sequence number of the list's first entry) by as many:
-- sequence numbers and cursors stay what they were. Atomic with the
-- card's writes (same slot), which read `hb` to number a new entry.
-- KEYS[1] card hash, KEYS[2] its history list
-- ARGV[1] every entry with a lower sequence number is in the archive
-- ARGV[2] entries to keep at least
-- Returns how many entries were taken off.
-- Both keys are read before the first write (HGET of the card, LLEN of the
-- list): a key of another type fails them with WRONGTYPE, nothing written
-- (Redis does not roll back a script).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local upto = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
if not upto or not keep or keep < 0 then
  return redis.error_reply('trim_history: arguments are not numbers')
end
local base = tonumber(redis.call('HGET', KEYS[1], 'hb') or '0') or 0
local len = redis.call('LLEN', KEYS[2])
local cut = math.min(upto, base + len - keep)
if cut <= base then
  return 0
end
redis.call('LTRIM', KEYS[2], cut - base, -1)
redis.call('HSET', KEYS[1], 'hb', string.format('%d', cut))
return cut - base
