-- Settle a user's whole chargeback debt (unlocking the account), once per key.
--
-- KEYS: 1 idempotency key (user)  2 user wallet  3 system balances  4 ledger outbox
-- ARGV: 1 fingerprint (32 chars)
--       2 outbox entry JSON up to the postings array: '{"id":…,…,"postings":['
--       3 the entry's meta (JSON object)
--       4 the account the money comes from (world or platform:writeoff)
--       5 the user's debt account (JSON string)
--       6 receipt JSON members other than coins
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", reason}
--@durable
--@include idempotency
--@include posting
local debt = -tonumber(redis.call('HGET', KEYS[2], 'debt') or '0')
if debt <= 0 then
  return {'E', 'no_debt'}
end

local amount = string.format('%d', debt)
redis.call('HINCRBY', KEYS[2], 'debt', debt)
redis.call('HINCRBY', KEYS[3], 'coin|' .. ARGV[4], -debt)
redis.call('XADD', KEYS[4], '*', 'tx', ARGV[2]
  .. posting('"' .. ARGV[4] .. '"', 'coin', -debt) .. ','
  .. posting(ARGV[5], 'coin', debt) .. '],"meta":' .. ARGV[3] .. '}')
local receipt = '{"coins":' .. amount .. ',' .. ARGV[6] .. '}'
redis.call('SET', KEYS[1], ARGV[1] .. receipt)
return {'OK', receipt}
