#!lua flags=no-writes
-- One consistent page of a card's history, newest first: LLEN and LRANGE in
-- one script so that an append (or the archive's trim) in between cannot
-- shift the page. Sequence numbers count from the card's first entry; the
-- list holds those from `hb` (the card hash's field, 0 when absent: the
-- entries the archive has taken off the head) on.
-- KEYS[1] the history list, KEYS[2] the card hash; ARGV[1] exclusive upper
-- bound seq ('' = none); ARGV[2] limit.
-- Returns {start seq, hb, e_start, ..., e_end-1} (oldest first).
local base = tonumber(redis.call('HGET', KEYS[2], 'hb') or '0') or 0
local len = redis.call('LLEN', KEYS[1])
local stop = len
if ARGV[1] ~= '' then
  local b = tonumber(ARGV[1]) - base
  if b < stop then
    stop = b
  end
end
if stop < 0 then
  stop = 0
end
local limit = tonumber(ARGV[2])
local start = stop - limit
if start < 0 then
  start = 0
end
local out = {start + base, base}
if stop > start then
  local items = redis.call('LRANGE', KEYS[1], start, stop - 1)
  for i = 1, #items do
    out[#out + 1] = items[i]
  end
end
return out
