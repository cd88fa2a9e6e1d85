#!lua
-- Creates a card only if it does not exist (existing cards keep their state)
-- and, when events are on, appends its `loaded` event to the change stream
-- of the card's slot (docs/events.md).
-- KEYS[1] card hash, KEYS[2] the change stream; ARGV[1] the card
-- (src/store/codec.rs), ARGV[2] the stream's approximate length ('0': no
-- events), ARGV[3] the card number, ARGV[4] the card as the event carries
-- it (the compact encoding, docs/events.md). Returns 1 if created, 0 if not.
-- Every key written is checked first (Redis does not roll back a script):
-- a key of another type is refused with CORRUPT, nothing written.
local card = redis.call('TYPE', KEYS[1])['ok']
if card == 'hash' then
  return 0
end
if card ~= 'none' then
  -- Not "exists already": a foreign value under a card's key is no card.
  return redis.error_reply('CORRUPT card ' .. KEYS[1] .. ' is a ' .. card .. ', not a hash')
end
local events = tonumber(ARGV[2] or '0')
if not events or events < 0 then
  return redis.error_reply('insert_card: events length not a number')
end
if events > 0 then
  local kind = redis.call('TYPE', KEYS[2])['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('CORRUPT change stream ' .. KEYS[2] .. ' is a ' .. kind .. ', not a stream')
  end
  -- First: the one write that can still fail on a stream (its last ID
  -- the largest there is), before the card is written.
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
    'v', '1', 'id', ARGV[3] .. ':loaded', 'card', ARGV[3],
    'kind', 'loaded', 'e', ARGV[4])
end
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[1])
return 1
