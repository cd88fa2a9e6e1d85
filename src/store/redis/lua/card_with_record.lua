#!lua flags=no-writes
-- A card and one of its records, read in one step so that the record is the
-- one that goes with the card's version.
-- KEYS[1] card hash, KEYS[2] the record key (same hash tag)
-- Returns {v, d, record, ttl_ms}: v, d and record nil when absent; ttl_ms
-- -1 for no expiry (-2 when the record is absent).
local card = redis.call('HMGET', KEYS[1], 'v', 'd')
local record = redis.call('GET', KEYS[2])
local ttl = -2
if record then
  ttl = redis.call('PTTL', KEYS[2])
end
return {card[1], card[2], record, ttl}
