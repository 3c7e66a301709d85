-- Send a gift: every check before the first write (Redis has no rollback).
--
-- KEYS: 1 idempotency key (sender)   2 sender wallet      3 room
--       4 creator wallet             5 room leaderboard   6 leaderboard profiles
--       7 system balances            8 ledger outbox
-- ARGV: 1 fingerprint (32 chars)     2 sender id          3 sender adult ("1"/"0")
--       4 creator id the caller expects (from its room cache; "" when unknown)
--       5 total coins                6 creator diamonds   7 platform coins
--       8 sender public profile (JSON)
--       9, 10 outbox entry JSON around the stream id (head .. stream_id .. tail)
--       11 receipt JSON members other than stream_id and balance
--       12 idempotency key TTL in seconds ("0": keep forever)
--       13 gift count                14 daily supporters TTL in seconds
-- KEYS (room activity, written with the gift so they always equal the ledger):
--       9 room stream totals         10 room goal         11 creator's all-time supporters
--       12 creator's supporters of the gift's day (UTC)   13 supporter profiles
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", code, message}
--          {"S", creator id}: the caller's cached creator is stale (wrong wallet in
--          KEYS); nothing was written and the caller retries with the right key.
local stored = redis.call('GET', KEYS[1])
if stored then
  if string.sub(stored, 1, 32) == ARGV[1] then
    return {'R', string.sub(stored, 33)}
  end
  return {'E', 'conflict', 'this idempotency key was already used for a different request'}
end

local room = redis.call('HMGET', KEYS[3], 'creator_id', 'live', 'creator_adult', 'stream_id')
local creator = room[1]
if not creator then
  return {'E', 'not_found', 'room not found'}
end
if creator ~= ARGV[4] then
  return {'S', creator}
end
if room[2] ~= '1' then
  return {'E', 'room_not_live', 'the room is not live'}
end
if ARGV[3] ~= '1' then
  return {'E', 'forbidden', 'only adults can send gifts'}
end
if ARGV[2] == creator then
  return {'E', 'forbidden', 'you cannot gift yourself'}
end
if room[3] ~= '1' then
  return {'E', 'forbidden', 'this creator cannot receive gifts'}
end
local total = tonumber(ARGV[5])
local coins = tonumber(redis.call('HGET', KEYS[2], 'coin') or '0')
if coins < total then
  return {'E', 'insufficient_funds',
          'this gift costs ' .. ARGV[5] .. ' coins, you have ' .. string.format('%d', coins)}
end

-- writes: nothing below can fail on valid keys
local diamonds = tonumber(ARGV[6])
local platform = tonumber(ARGV[7])
local balance = redis.call('HINCRBY', KEYS[2], 'coin', -total)
redis.call('HINCRBY', KEYS[4], 'diamond', diamonds)
redis.call('HINCRBY', KEYS[7], 'coin|platform:revenue', platform)
redis.call('HINCRBY', KEYS[7], 'coin|platform:exchange', diamonds)
redis.call('HINCRBY', KEYS[7], 'diamond|platform:exchange', -diamonds)
local stream_id = room[4]
redis.call('XADD', KEYS[8], '*', 'tx', ARGV[9] .. stream_id .. ARGV[10])
redis.call('ZINCRBY', KEYS[5], total, ARGV[2])
redis.call('HSET', KEYS[6], ARGV[2], ARGV[8])
redis.call('HINCRBY', KEYS[9], stream_id .. ':gifts', ARGV[13])
redis.call('HINCRBY', KEYS[9], stream_id .. ':coins', total)
redis.call('HINCRBY', KEYS[9], stream_id .. ':diamonds', diamonds)
if redis.call('HGET', KEYS[10], 'stream_id') == stream_id then
  redis.call('HINCRBY', KEYS[10], 'progress', diamonds)
end
redis.call('ZINCRBY', KEYS[11], total, ARGV[2])
redis.call('ZINCRBY', KEYS[12], total, ARGV[2])
redis.call('EXPIRE', KEYS[12], ARGV[14])
redis.call('HSET', KEYS[13], ARGV[2], ARGV[8])
local receipt = '{"stream_id":' .. stream_id .. ',"balance":' .. string.format('%d', balance)
  .. ',' .. ARGV[11] .. '}'
if ARGV[12] == '0' then
  redis.call('SET', KEYS[1], ARGV[1] .. receipt)
else
  redis.call('SET', KEYS[1], ARGV[1] .. receipt, 'EX', ARGV[12])
end
return {'OK', receipt}
