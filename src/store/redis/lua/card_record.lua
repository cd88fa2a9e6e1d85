#!lua flags=no-writes
-- One of a card's records.
-- KEYS[1] the card's record set; ARGV[1] the record's name.
-- Returns the record, or nil when absent or expired.
local record = records_get(KEYS[1], ARGV[1])
return record
