-- Reserve diamonds for a withdrawal (status pending): every check before the
-- first write (Redis has no rollback). Check order as store.roles.Wallet says.
--
-- KEYS: 1 idempotency key (user)   2 user wallet          3 user account
--       4 earnings per hour        5 the withdrawal (hash) 6 the user's withdrawals
--       7 ledger outbox            8 withdrawal owners (absent on a cluster,
--         where the caller writes the owner beside the withdrawal's id first)
-- ARGV: 1 fingerprint (32 chars)   2 withdrawal id         3 user id
--       4 diamonds                 5 smallest withdrawal   6 daily maximum ("0": none)
--       7 today (UTC, YYYY-MM-DD)  8 hold seconds ("0": nothing held)
--       9 the first hour still held at now   10 outbox entry JSON
--       11 .. the withdrawal's fields for its hash (name, value, ...)
--
-- Replies: {"OK", id}  {"R", id of the first withdrawal with this key}
--          {"E", reason, value...}
--@durable
--@include idempotency
local acct = redis.call('HMGET', KEYS[3], 'verified_at', 'wd_day', 'wd_today')
if not acct[1] or acct[1] == '' then
  return {'E', 'not_verified'}
end
local amount = tonumber(ARGV[4])
if amount < tonumber(ARGV[5]) then
  return {'E', 'below_minimum', ARGV[5]}
end
local today = 0
if acct[2] == ARGV[7] then
  today = tonumber(acct[3] or '0')
end
local maximum = tonumber(ARGV[6])
if maximum > 0 and today + amount > maximum then
  return {'E', 'daily_maximum', ARGV[6], today}
end
local balance = tonumber(redis.call('HGET', KEYS[2], 'diamond') or '0')
local held = 0
if ARGV[8] ~= '0' then
  local first = tonumber(ARGV[9])
  local hours = redis.call('HGETALL', KEYS[4])
  for i = 1, #hours, 2 do
    local d = tonumber(hours[i + 1])
    if tonumber(hours[i]) >= first and d > 0 then
      held = held + d
    end
  end
  held = math.min(math.max(balance, 0), held)
end
local withdrawable = balance - held
if amount > withdrawable then
  return {'E', 'not_withdrawable', math.max(withdrawable, 0), held}
end

-- writes: nothing below can fail on valid keys
redis.call('HINCRBY', KEYS[2], 'diamond', -amount)
redis.call('HINCRBY', KEYS[2], 'withdrawing', amount)
redis.call('XADD', KEYS[7], '*', 'tx', ARGV[10])
redis.call('HSET', KEYS[5], unpack(ARGV, 11))
redis.call('ZADD', KEYS[6], 0, ARGV[2])
if KEYS[8] then
  redis.call('HSET', KEYS[8], ARGV[2], ARGV[3])
end
redis.call('HSET', KEYS[3], 'wd_day', ARGV[7], 'wd_today', string.format('%d', today + amount))
redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2])
return {'OK', ARGV[2]}
