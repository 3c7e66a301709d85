-- Credit a coin purchase, once per payment id.
--
-- KEYS: 1 idempotency key (payment)  2 user wallet  3 system balances  4 ledger outbox
--       5 user account
-- ARGV: 1 fingerprint (32 chars)  2 buyer adult ("1"/"0")
--       3 coins from world (the package's coins and bulk bonus)
--       4 outbox entry JSON up to the postings array: '{"id":…,…,"postings":['
--       5 the entry's meta members (JSON, without braces)
--       6 receipt JSON members other than balance, coins, bonus, debt_paid, promotions
--       7 enforce limits ("1": refuse when purchases are turned off; a locked
--         account may buy, the credit pays its debt first)
--       8 the user's coins account, 9 debt account (JSON strings)
--       10 number of promotions, then per promotion: id (JSON string), coins,
--          first purchase only ("1"/"0")
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", reason, value...}
--@durable
--@include idempotency
--@include posting
if ARGV[2] ~= '1' then
  return {'E', 'minor_buyer'}
end
local debt = -tonumber(redis.call('HGET', KEYS[2], 'debt') or '0')
local acct = redis.call('HMGET', KEYS[5], 'purchases_off', 'purchases')
if ARGV[7] == '1' and acct[1] == '1' then
  return {'E', 'purchases_off'}
end

-- what it credits (as the embedded engine's purchase)
local first = tonumber(acct[2] or '0') == 0
local paid = tonumber(ARGV[3])
local bonus = 0
local grants, ids = {}, {}
for i = 0, tonumber(ARGV[10]) - 1 do
  local id, coins, first_only = ARGV[11 + 3 * i], tonumber(ARGV[12 + 3 * i]), ARGV[13 + 3 * i]
  if coins > 0 and (first or first_only ~= '1') then
    bonus = bonus + coins
    table.insert(grants, '{"id":' .. id .. ',"coins":' .. string.format('%d', coins) .. '}')
    table.insert(ids, id)
  end
end
local credit = paid + bonus
local debt_paid = math.min(debt, credit)

local postings = {posting('"world"', 'coin', -paid)}
if bonus > 0 then
  table.insert(postings, posting('"platform:promotions"', 'coin', -bonus))
end
if debt_paid > 0 then
  table.insert(postings, posting(ARGV[9], 'coin', debt_paid))
end
if credit > debt_paid then
  table.insert(postings, posting(ARGV[8], 'coin', credit - debt_paid))
end
local meta = ARGV[5]
if #grants > 0 then
  meta = meta .. ',"promotions":[' .. table.concat(grants, ',') .. ']'
end
if debt_paid > 0 then
  meta = meta .. ',"debt_paid":' .. string.format('%d', debt_paid)
end

local balance = redis.call('HINCRBY', KEYS[2], 'coin', credit - debt_paid)
if debt_paid > 0 then
  redis.call('HINCRBY', KEYS[2], 'debt', debt_paid)
end
redis.call('HINCRBY', KEYS[3], 'coin|world', -paid)
if bonus > 0 then
  redis.call('HINCRBY', KEYS[3], 'coin|platform:promotions', -bonus)
end
redis.call('HINCRBY', KEYS[5], 'purchases', 1)
redis.call('XADD', KEYS[4], '*', 'tx',
  ARGV[4] .. table.concat(postings, ',') .. '],"meta":{' .. meta .. '}}')
local receipt = '{"balance":' .. string.format('%d', balance) .. ',"coins":'
  .. string.format('%d', credit) .. ',"bonus":' .. string.format('%d', bonus)
  .. ',"debt_paid":' .. string.format('%d', debt_paid) .. ',"promotions":['
  .. table.concat(ids, ',') .. '],' .. ARGV[6] .. '}'
-- payment keys never expire: a provider may redeliver a webhook days later
redis.call('SET', KEYS[1], ARGV[1] .. receipt)
return {'OK', receipt}
