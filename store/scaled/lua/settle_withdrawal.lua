-- Resolve a pending withdrawal once: paid (to payout) or failed (back to the
-- creator). Every check before the first write.
--
-- KEYS: 1 the withdrawal (hash)  2 its creator's wallet  3 its creator's account
--       4 system balances        5 ledger outbox
-- ARGV: 1 outcome ("paid"/"failed")  2 the diamonds the caller read (they never
--       change)  3 now (ms)  4 reference  5 reason  6 settling transaction id
--       7 outbox entry JSON
--
-- Replies: {"OK", field, value, ...} (the withdrawal)  {"R", field, value, ...}
--          {"E", reason, value...}  {"S"}: the caller read another withdrawal
--@durable
local w = redis.call('HMGET', KEYS[1], 'status', 'diamonds', 'day')
if not w[1] then
  return {'E', 'withdrawal_not_found'}
end
if w[1] ~= 'pending' then
  if w[1] == ARGV[1] then
    local reply = redis.call('HGETALL', KEYS[1])
    table.insert(reply, 1, 'R')
    return reply
  end
  return {'E', 'already_settled', w[1]}
end
if w[2] ~= ARGV[2] then
  return {'S'}
end

local amount = tonumber(w[2])
redis.call('HINCRBY', KEYS[2], 'withdrawing', -amount)
if ARGV[1] == 'paid' then
  redis.call('HINCRBY', KEYS[4], 'diamond|payout', amount)
  redis.call('HINCRBY', KEYS[3], 'wd_paid', amount)
else
  redis.call('HINCRBY', KEYS[2], 'diamond', amount)
  -- a voided withdrawal no longer counts towards its day's maximum
  if redis.call('HGET', KEYS[3], 'wd_day') == w[3] then
    redis.call('HINCRBY', KEYS[3], 'wd_today', -amount)
  end
end
redis.call('XADD', KEYS[5], '*', 'tx', ARGV[7])
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'settled_at', ARGV[3], 'reference', ARGV[4],
  'reason', ARGV[5], 'settle_tx', ARGV[6])
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'OK')
return reply
