#!lua
-- A purchase in one step (docs/adr/0005, issue 20): the PurchaseId's
-- claim, the create-only outcome, the card's compare-and-set, its history
-- entry and its change event. On one node the claim's index entry is a key
-- of this script too, so the whole purchase is one round trip; on a
-- cluster it lives in another slot: the store claims it first
-- (index_claim.lua) and calls this script without it.
-- Every check comes before the first write (Redis does not roll back a
-- script), in the order the engine answers them: a stored outcome first
-- (a replay answers as the first time did, docs/api.md §7), then the
-- PurchaseId's claim, then the card's version. Every key is read before
-- the first write (the event's XADD, itself the first write, excepted),
-- and a key of another type (an operator's mistake, a foreign writer) fails
-- that read and is refused with CORRUPT naming it (`records_read`, issue
-- 26): no TYPE command per key.
-- KEYS[1] card hash, KEYS[2] its history list, KEYS[3] the change stream
--   of its slot, KEYS[4] its record set; KEYS[5] (one node only) the
--   PurchaseId's index entry (hash: owner, since)
-- ARGV[1] expected version, ARGV[2] the card (codec), ARGV[3] its history
--   entry as the list keeps it, ARGV[4] the outcome's TTL in seconds (> 0),
--   ARGV[5] the change stream's approximate length ('0': no events),
--   ARGV[6] the card number, ARGV[7] the entry as the event carries it,
--   ARGV[8] the outcome's name in the record set, ARGV[9] its value;
--   with KEYS[5]: ARGV[10] '0' claim expected absent / '1' expected to be
--   ARGV[11], ARGV[12] the new owner, ARGV[13] ms until the claim expires
--   ('' never)
-- Returns {1} when applied; {2, outcome, ms left (-1: never)} when the
-- outcome exists (nothing written); {3, owner, since, now} ({3} when
-- absent) when the claim is not the one expected; {0, v, d} when the card
-- is not at the expected version (v and d nil when it is gone).
local claiming = #KEYS == 5
if #KEYS ~= 4 and not claiming then
  return redis.error_reply('confirm_purchase: 4 or 5 keys')
end
if #ARGV ~= (claiming and 13 or 9) then
  return redis.error_reply('confirm_purchase: wrong number of arguments')
end
local card, history, stream, set = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl = tonumber(ARGV[4])
if not ttl or ttl < 1 or ttl > 1e12 then
  return redis.error_reply('confirm_purchase: record TTL out of range')
end
local events = tonumber(ARGV[5])
if not events or events < 0 then
  return redis.error_reply('confirm_purchase: events length not a number')
end
local now, chance = records_now()
local stored, left = records_get(set, ARGV[8], now)
if stored then
  return {2, stored, left}
end
local claim_ttl
if claiming then
  local cur = records_read('PurchaseId index entry', KEYS[5], 'HMGET', KEYS[5], 'owner', 'since')
  local owner = cur[1]
  local matches
  if ARGV[10] == '0' then
    matches = not owner
  else
    matches = owner and owner == ARGV[11]
  end
  if not matches then
    if owner then
      return {3, owner, cur[2] or '0', tostring(now)}
    end
    return {3}
  end
  claim_ttl = ARGV[13]
  if claim_ttl ~= '' and (not string.match(claim_ttl, '^%d+$') or tonumber(claim_ttl) < 1 or tonumber(claim_ttl) > 1e15) then
    return redis.error_reply('confirm_purchase: claim TTL not a whole number of ms from 1 to 1e15')
  end
end
local current = records_read('card', card, 'HMGET', card, 'v', 'd', 'hb')
local v = current[1]
if not v or v ~= ARGV[1] then
  return {0, current[1], current[2]}
end
local n = tonumber(v)
if not n then
  return redis.error_reply('CORRUPT version field of ' .. card)
end
-- The entry's sequence number, as update_card.lua numbers it.
local base = tonumber(current[3] or '0') or 0
local seq = string.format('%d', base + records_read('history', history, 'LLEN', history))
-- The writes. The event first: XADD is the one write that can still fail
-- (on a stream of another type, or one whose last ID is the largest there
-- is), and failing first it leaves nothing written.
if events > 0 then
  records_read('change stream', stream, 'XADD', stream, 'MAXLEN', '~', ARGV[5], '*',
    'v', '1', 'id', ARGV[6] .. ':' .. seq, 'card', ARGV[6],
    'kind', 'history', 'seq', seq, 'e', ARGV[7])
end
redis.call('HSET', card, 'v', tostring(n + 1), 'd', ARGV[2])
redis.call('RPUSH', history, ARGV[3])
local pttl = redis.call('PTTL', set)
local expires = now + ttl * 1000
records_put(set, ARGV[8], ARGV[9], expires)
records_keep(set, pttl, expires)
-- The sweep of update_card.lua (about 4 fields a write).
local encoding = redis.call('OBJECT', 'ENCODING', set)
if encoding == 'hashtable' then
  if n % 4 == 0 then
    records_sweep(set, now, 16, string.format('%d', (n / 4) * 7919 % 1048576))
  end
elseif encoding then
  local size = redis.call('HLEN', set)
  if chance % math.max(1, math.floor(size / 4)) == 0 then
    records_sweep(set, now, size, '0')
  end
end
if claiming then
  redis.call('HSET', KEYS[5], 'owner', ARGV[12], 'since', tostring(now))
  if claim_ttl ~= '' then
    redis.call('PEXPIRE', KEYS[5], claim_ttl)
  end
end
return {1}
