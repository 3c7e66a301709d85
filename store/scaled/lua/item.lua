-- Buy an in-app item: every check before the first write (Redis has no rollback),
-- in the order of store.roles.Items.buy and the embedded engine.
--
-- KEYS: 1 idempotency key (buyer)   2 buyer wallet   3 room (any buyer key when none)
--       4 creator wallet (the buyer's when none)   5 system balances   6 ledger outbox
--       7 buyer account   8 buyer inventory   9 creator earnings per hour
--       10 creator earnings per stream
-- ARGV: 1 fingerprint (32 chars)   2 buyer id   3 buyer adult ("1"/"0")
--       4 creator id the caller expects ("" when unknown)   5 "1": bought in a room
--       6 price (coins)   7 creator share percent   8 item id   9 item kind
--       10 duration in ms ("0": permanent)   11 now (ms)
--       12 the buyer's time zone the caller assumed   13, 14 local day and month
--       15, 16 platform daily and monthly caps ("0": none)
--       17 gifts per minute per user ("0": not rate limited)   18 burst
--       19 the hour of now   20 room id   21 "1": the caller refuses the sale
--       22 outbox entry JSON up to the postings array   23 the entry's meta members
--       24 receipt JSON members the caller knows   25 buyer coins account (JSON)
--       26 creator diamonds account (JSON)   27 creator id (JSON)
--       28 idempotency key TTL in seconds ("0": keep forever)
--       29 "": the script reads the room at KEYS[3] and credits the creator's
--         share at KEYS[4], 9 and 10; otherwise the caller read the room on its
--         own slot ("0": not found, "1": found, its creator being ARGV[4]) and
--         credits the share itself (a cluster): KEYS are 1 to 8 only, 3 and 4
--         being any keys of the buyer's slot
--       30, 31 the room's creator_adult and stream_id the caller read
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", reason, value...}
--          {"S", creator id}: the room's creator is not the one expected (nothing written)
--          {"T", time zone}: the buyer's time zone is not the one assumed (nothing written)
--          {"N"}: not a resend, and ARGV[21] refused the sale: nothing was written.
--@durable
--@include idempotency
--@include posting
if ARGV[21] == '1' then
  return {'N'}
end
--@include bucket
--@include spending

local creator, creator_adult, stream_id = '', '0', '0'
if ARGV[5] == '1' then
  local room
  if ARGV[29] == '' then
    room = redis.call('HMGET', KEYS[3], 'creator_id', 'creator_adult', 'stream_id')
  elseif ARGV[29] == '1' then
    room = {ARGV[4], ARGV[30], ARGV[31]}
  else
    room = {false}
  end
  if not room[1] then
    return {'E', 'room_not_found'}
  end
  if room[1] ~= ARGV[4] then
    return {'S', room[1]}
  end
  creator, creator_adult, stream_id = room[1], room[2], room[3] or '0'
end
if ARGV[3] ~= '1' then
  return {'E', 'minor_item_buyer'}
end
local total = tonumber(ARGV[6])
local now = tonumber(ARGV[11])
local rule = {off = 'items_off', action = 'item purchases', daily = 'item_daily_cap',
  monthly = 'item_monthly_cap', per_minute = ARGV[17], burst = ARGV[18], tz = ARGV[12],
  day = ARGV[13], month = ARGV[14], daily_cap = ARGV[15], monthly_cap = ARGV[16]}
local spent, refused = check_spending(2, 7, total, now, rule)
if not spent then
  return refused
end
-- what the buyer owns of it: kind|acquired_at|expires_at
local owned = redis.call('HGET', KEYS[8], ARGV[8])
local acquired, ends = now, nil
if owned then
  local _, _, old_acquired, old_until = string.find(owned, '^[^|]*|(%d+)|(%d*)$')
  if old_until == '' then
    return {'E', 'item_owned', ARGV[8]}
  end
  if tonumber(old_until) > now then
    acquired, ends = tonumber(old_acquired), tonumber(old_until)
  end
end
local coins = tonumber(redis.call('HGET', KEYS[2], 'coin') or '0')
if coins < total then
  return {'E', 'item_funds', total, coins}
end

-- writes: nothing below can fail on valid keys
local diamonds = 0
if creator ~= '' and creator ~= ARGV[2] and creator_adult == '1' then
  diamonds = math.floor(total * tonumber(ARGV[7]) / 100)
end
local expires = 'null'
local expires_field = ''
if ARGV[10] ~= '0' then
  expires_field = string.format('%d', (ends or now) + tonumber(ARGV[10]))
  expires = expires_field
end
local earner = '""'
if diamonds > 0 then
  earner = ARGV[27]
end
local balance = redis.call('HINCRBY', KEYS[2], 'coin', -total)
redis.call('HINCRBY', KEYS[2], 'spends', 1)
redis.call('HINCRBY', KEYS[5], 'coin|platform:revenue', total - diamonds)
local postings = {posting(ARGV[25], 'coin', -total),
  posting('"platform:revenue"', 'coin', total - diamonds)}
if diamonds > 0 then
  redis.call('HINCRBY', KEYS[5], 'coin|platform:exchange', diamonds)
  redis.call('HINCRBY', KEYS[5], 'diamond|platform:exchange', -diamonds)
  if ARGV[29] == '' then
    redis.call('HINCRBY', KEYS[4], 'diamond', diamonds)
    redis.call('HINCRBY', KEYS[9], ARGV[19], diamonds)
    redis.call('HINCRBY', KEYS[10], stream_id .. '|' .. ARGV[20], diamonds)
  end
  table.insert(postings, posting('"platform:exchange"', 'coin', diamonds))
  table.insert(postings, posting('"platform:exchange"', 'diamond', -diamonds))
  table.insert(postings, posting(ARGV[26], 'diamond', diamonds))
end
redis.call('XADD', KEYS[6], '*', 'tx', ARGV[22] .. table.concat(postings, ',') .. '],"meta":{'
  .. ARGV[23] .. ',"expires_at":' .. expires .. ',"creator_id":' .. earner .. '}}')
record_spending(7, spent, rule, ARGV[11])
redis.call('HSET', KEYS[8], ARGV[8],
  ARGV[9] .. '|' .. string.format('%d', acquired) .. '|' .. expires_field)
local receipt = '{' .. ARGV[24] .. ',"diamonds":' .. string.format('%d', diamonds)
  .. ',"creator_id":' .. earner .. ',"balance":' .. string.format('%d', balance)
  .. ',"expires_at":' .. expires .. '}'
if ARGV[28] == '0' then
  redis.call('SET', KEYS[1], ARGV[1] .. receipt)
else
  redis.call('SET', KEYS[1], ARGV[1] .. receipt, 'EX', ARGV[28])
end
return {'OK', receipt}
