-- Credit a coin purchase, once per payment id.
--
-- KEYS: 1 idempotency key (payment)  2 user wallet  3 system balances  4 ledger outbox
-- ARGV: 1 fingerprint (32 chars)  2 buyer adult ("1"/"0")  3 coins to credit
--       4 outbox entry JSON  5 receipt JSON members other than balance
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", code, message}
local stored = redis.call('GET', KEYS[1])
if stored then
  if string.sub(stored, 1, 32) == ARGV[1] then
    return {'R', string.sub(stored, 33)}
  end
  return {'E', 'conflict', 'this idempotency key was already used for a different request'}
end
if ARGV[2] ~= '1' then
  return {'E', 'forbidden', 'only adults can buy coins'}
end

local credit = tonumber(ARGV[3])
local balance = redis.call('HINCRBY', KEYS[2], 'coin', credit)
redis.call('HINCRBY', KEYS[3], 'coin|world', -credit)
redis.call('XADD', KEYS[4], '*', 'tx', ARGV[4])
local receipt = '{"balance":' .. string.format('%d', balance) .. ',' .. ARGV[5] .. '}'
-- payment keys never expire: a provider may redeliver a webhook days later
redis.call('SET', KEYS[1], ARGV[1] .. receipt)
return {'OK', receipt}
