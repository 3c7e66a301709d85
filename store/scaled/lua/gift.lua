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
-- KEYS (money rules): 14 sender account   15 creator earnings per hour
--       16 creator earnings per stream
-- ARGV (money rules): 15 now (ms)   16 the sender's time zone the caller assumed
--       17, 18 the local day (YYYY-MM-DD) and month (YYYY-MM) of now in that zone
--       19, 20 platform daily and monthly spending caps ("0": none)
--       21 gifts per minute per user ("0": not rate limited)   22 gift burst
--       23 the hour of now (ms // 3600000)   24 room id
--       25 "1": the caller refuses the sale (not offered, or another price shown)
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", reason, value...}
--          {"S", creator id}: the caller's cached creator is stale (wrong wallet in
--          KEYS); nothing was written and the caller retries with the right key.
--          {"T", time zone}: the sender's time zone is not the one assumed; nothing
--          was written and the caller retries with that zone's day and month.
--          {"N"}: not a resend, and ARGV[25] refused the sale: nothing was written.
--@include idempotency
if ARGV[25] == '1' then
  return {'N'}
end
--@include bucket
--@include spending

local room = redis.call('HMGET', KEYS[3], 'creator_id', 'live', 'creator_adult', 'stream_id')
local creator = room[1]
if not creator then
  return {'E', 'room_not_found'}
end
if creator ~= ARGV[4] then
  return {'S', creator}
end
if room[2] ~= '1' then
  return {'E', 'room_not_live'}
end
if ARGV[3] ~= '1' then
  return {'E', 'minor_sender'}
end
if ARGV[2] == creator then
  return {'E', 'self_gift'}
end
if room[3] ~= '1' then
  return {'E', 'minor_creator'}
end
local total = tonumber(ARGV[5])
-- the sender's account (store.domain.rules has the same arithmetic)
local rule = {off = 'gifting_off', action = 'gifts', daily = 'daily_cap', monthly = 'monthly_cap',
  per_minute = ARGV[21], burst = ARGV[22], tz = ARGV[16], day = ARGV[17], month = ARGV[18],
  daily_cap = ARGV[19], monthly_cap = ARGV[20]}
local spent, refused = check_spending(2, 14, total, tonumber(ARGV[15]), rule)
if not spent then
  return refused
end
local coins = tonumber(redis.call('HGET', KEYS[2], 'coin') or '0')
if coins < total then
  return {'E', 'insufficient_funds', ARGV[5], coins}
end

-- writes: nothing below can fail on valid keys
local diamonds = tonumber(ARGV[6])
local platform = tonumber(ARGV[7])
local balance = redis.call('HINCRBY', KEYS[2], 'coin', -total)
-- a refund that read this user's gifts checks this count did not move (refund.lua)
redis.call('HINCRBY', KEYS[2], 'spends', 1)
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
record_spending(14, spent, rule, ARGV[15])
if diamonds > 0 then
  redis.call('HINCRBY', KEYS[15], ARGV[23], diamonds)
  redis.call('HINCRBY', KEYS[16], stream_id .. '|' .. ARGV[24], diamonds)
end
local receipt = '{"stream_id":' .. stream_id .. ',"balance":' .. string.format('%d', balance)
  .. ',' .. ARGV[11] .. '}'
if ARGV[12] == '0' then
  redis.call('SET', KEYS[1], ARGV[1] .. receipt)
else
  redis.call('SET', KEYS[1], ARGV[1] .. receipt, 'EX', ARGV[12])
end
return {'OK', receipt}
