#!lua flags=no-writes
-- A card and one of its records, read in one step so that the record is the
-- one that goes with the card's version.
-- KEYS[1] card hash, KEYS[2] the card's record set (same hash tag);
-- ARGV[1] the record's name.
-- Returns {v, d, record, ttl_ms}: v, d and record nil when absent; ttl_ms
-- -1 for no expiry (-2 when the record is absent).
local card = redis.call('HMGET', KEYS[1], 'v', 'd')
local record, ttl = records_get(KEYS[2], ARGV[1])
return {card[1], card[2], record, ttl or -2}
