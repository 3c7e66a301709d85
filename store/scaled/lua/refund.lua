-- Reverse a credited purchase (refund or chargeback), once per payment: every
-- check before the first write (Redis has no rollback).
--
-- KEYS: 1 reversal idempotency key   2 the purchase's payment key   3 user wallet
--       4 system balances            5 ledger outbox
--       6.. the wallets of the creators in ARGV whose holding is "" (one per
--         such creator, in that order)
-- ARGV: 1 fingerprint (32 chars)  2 the user the caller read from the purchase
--       3 outbox entry JSON up to the postings array: '{"id":…,…,"postings":['
--       4 the entry's meta members (JSON, without braces) the caller knows
--       5 receipt JSON members the caller knows (tx, kind, user, provider, payment,
--         created_at)
--       6 the user's coins account, 7 debt account (JSON strings)
--       8 number of creators m, then per creator: id (JSON string), diamonds
--         account (JSON string), the diamonds the creator holds ("": read from
--         its wallet in KEYS, which the script then debits; a number: the caller
--         read them on another slot and claws back with a credit step of its own)
--       then the number of gifts n, then per gift (the user's gifts and item
--         purchases after the purchase, newest first): creator number (1..m; 0:
--         an item without a creator share, nothing to claw back), coins, diamonds
--       last: the wallet's 'spends' count the caller read before reading those
--         gifts ("": it read none, the coins looked unspent)
--
-- Replies: {"OK", receipt, clawbacks JSON array}  {"R", stored receipt}  {"E", reason}
--          {"S", user id}: the purchase belongs to another user than ARGV 2 (the
--          caller read it before it was stored); nothing was written.
--          {"G"}: some of the coins are spent and a gift landed since the caller
--          read the gifts (or it read none): nothing was written, the caller
--          reads the gifts again. gift.lua and item.lua bump 'spends' in the same
--          wallet hash, so the refund and the gifts serialize on that key and the
--          clawback sees exactly the gifts made before it.
--@durable
--@include idempotency
--@include posting
local raw = redis.call('GET', KEYS[2])
if not raw then
  return {'E', 'payment_not_found'}
end
local purchase = cjson.decode(string.sub(raw, 33))
if type(purchase.user_id) ~= 'string' or purchase.user_id == '' then
  return {'E', 'payment_not_found'}
end
if purchase.user_id ~= ARGV[2] then
  return {'S', purchase.user_id}
end

-- what comes back (store.domain.rules: clawbacks)
local credit = tonumber(purchase.coins)
local bonus = tonumber(purchase.bonus or 0)
local paid = credit - bonus
local coins = tonumber(redis.call('HGET', KEYS[3], 'coin') or '0')
local debt = tonumber(redis.call('HGET', KEYS[3], 'debt') or '0')
local taken = math.min(coins, credit)
local shortfall = credit - taken
if shortfall > 0 then
  local seen = ARGV[#ARGV]
  if seen == '' or seen ~= (redis.call('HGET', KEYS[3], 'spends') or '0') then
    return {'G'}
  end
end
local m = tonumber(ARGV[8])
local n_at = 9 + 3 * m
local n = tonumber(ARGV[n_at])
-- KEYS index of each creator's wallet (nil: the caller gave its holding)
local wallets, at = {}, 5
for c = 1, m do
  if ARGV[8 + 3 * c] == '' then
    at = at + 1
    wallets[c] = at
  end
end
local left, claws, order = {}, {}, {}
local remaining = shortfall
for i = 0, n - 1 do
  if remaining <= 0 then
    break
  end
  local c = tonumber(ARGV[n_at + 1 + 3 * i])
  local gift_coins = tonumber(ARGV[n_at + 2 + 3 * i])
  local gift_diamonds = tonumber(ARGV[n_at + 3 + 3 * i])
  if gift_coins > 0 and c == 0 then
    remaining = remaining - math.min(remaining, gift_coins)
  elseif gift_coins > 0 then
    local covered = math.min(remaining, gift_coins)
    remaining = remaining - covered
    local owed = gift_diamonds
    if covered ~= gift_coins then
      owed = math.floor(gift_diamonds * covered / gift_coins)
    end
    if left[c] == nil and wallets[c] then
      left[c] = tonumber(redis.call('HGET', KEYS[wallets[c]], 'diamond') or '0')
    elseif left[c] == nil then
      left[c] = tonumber(ARGV[8 + 3 * c])
    end
    local claw = math.min(owed, math.max(left[c], 0))
    if claw > 0 then
      left[c] = left[c] - claw
      if claws[c] == nil then
        claws[c] = 0
        table.insert(order, c)
      end
      claws[c] = claws[c] + claw
    end
  end
end

-- writes: nothing below can fail on valid keys
local postings = {posting('"world"', 'coin', paid)}
redis.call('HINCRBY', KEYS[4], 'coin|world', paid)
if bonus > 0 then
  table.insert(postings, posting('"platform:promotions"', 'coin', bonus))
  redis.call('HINCRBY', KEYS[4], 'coin|platform:promotions', bonus)
end
if taken > 0 then
  table.insert(postings, posting(ARGV[6], 'coin', -taken))
  redis.call('HINCRBY', KEYS[3], 'coin', -taken)
end
local clawed = 0
local clawbacks = {}
for _, c in ipairs(order) do
  clawed = clawed + claws[c]
end
local debt_change = clawed - shortfall
if debt_change ~= 0 then
  table.insert(postings, posting(ARGV[7], 'coin', debt_change))
  redis.call('HINCRBY', KEYS[3], 'debt', debt_change)
end
for _, c in ipairs(order) do
  table.insert(postings, posting(ARGV[7 + 3 * c], 'diamond', -claws[c]))
  if wallets[c] then
    redis.call('HINCRBY', KEYS[wallets[c]], 'diamond', -claws[c])
  end
  table.insert(clawbacks, '{"creator_id":' .. ARGV[6 + 3 * c] .. ',"diamonds":'
    .. string.format('%d', claws[c]) .. '}')
end
if clawed > 0 then
  table.insert(postings, posting('"platform:exchange"', 'diamond', clawed))
  table.insert(postings, posting('"platform:exchange"', 'coin', -clawed))
  redis.call('HINCRBY', KEYS[4], 'diamond|platform:exchange', clawed)
  redis.call('HINCRBY', KEYS[4], 'coin|platform:exchange', -clawed)
end
clawbacks = '[' .. table.concat(clawbacks, ',') .. ']'
local purchase_tx = cjson.encode(purchase.tx)
local meta = ARGV[4] .. ',"purchase_tx":' .. purchase_tx .. ',"coins":'
  .. string.format('%d', credit) .. ',"taken":' .. string.format('%d', taken) .. ',"debt":'
  .. string.format('%d', shortfall) .. ',"clawbacks":' .. clawbacks
redis.call('XADD', KEYS[5], '*', 'tx',
  ARGV[3] .. table.concat(postings, ',') .. '],"meta":{' .. meta .. '}}')
local receipt = '{' .. ARGV[5] .. ',"purchase_tx":' .. purchase_tx .. ',"coins":'
  .. string.format('%d', credit) .. ',"taken":' .. string.format('%d', taken) .. ',"debt":'
  .. string.format('%d', shortfall) .. ',"clawed_back":' .. string.format('%d', clawed)
  .. ',"debt_after":' .. string.format('%d', -(debt + debt_change)) .. '}'
redis.call('SET', KEYS[1], ARGV[1] .. receipt)
return {'OK', receipt, clawbacks}
