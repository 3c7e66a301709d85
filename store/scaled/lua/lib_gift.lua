-- Included by gift.lua and gift_debit.lua, after --@include bucket and spending:
-- a gift's checks in the embedded engine's order, from the room's facts, and the
-- sender's side of its writes. ARGV is numbered as in gift.lua (1 to 24).
--
-- room: {creator id or nil (no such room), live, creator adult, stream id}
-- wallet, account, balances, outbox: indexes into KEYS

-- returns the spending state and its rule, or nil and the reply to return
local function check_gift(room, wallet, account)
  local creator = room[1]
  if not creator then
    return nil, {'E', 'room_not_found'}
  end
  if creator ~= ARGV[4] then
    return nil, {'S', creator}
  end
  if room[2] ~= '1' then
    return nil, {'E', 'room_not_live'}
  end
  if ARGV[3] ~= '1' then
    return nil, {'E', 'minor_sender'}
  end
  if ARGV[2] == creator then
    return nil, {'E', 'self_gift'}
  end
  if room[3] ~= '1' then
    return nil, {'E', 'minor_creator'}
  end
  local total = tonumber(ARGV[5])
  -- the sender's account (store.domain.rules has the same arithmetic)
  local rule = {off = 'gifting_off', action = 'gifts', daily = 'daily_cap',
    monthly = 'monthly_cap', per_minute = ARGV[21], burst = ARGV[22], tz = ARGV[16],
    day = ARGV[17], month = ARGV[18], daily_cap = ARGV[19], monthly_cap = ARGV[20]}
  local spent, refused = check_spending(wallet, account, total, tonumber(ARGV[15]), rule)
  if not spent then
    return nil, refused
  end
  local coins = spent.coins
  if coins < total then
    return nil, {'E', 'insufficient_funds', ARGV[5], coins}
  end
  return spent, rule
end

-- the sender's writes: coins out, platform revenue and exchange, the whole
-- transaction to the outbox (with `extra` fields), the spending recorded.
-- Returns the sender's balance.
local function debit_gift(wallet, balances, outbox, account, spent, rule, stream_id, extra)
  local total = tonumber(ARGV[5])
  local diamonds = tonumber(ARGV[6])
  local balance = redis.call('HINCRBY', KEYS[wallet], 'coin', -total)
  -- a refund that read this user's gifts checks this count did not move (refund.lua)
  redis.call('HINCRBY', KEYS[wallet], 'spends', 1)
  redis.call('HINCRBY', KEYS[balances], 'coin|platform:revenue', tonumber(ARGV[7]))
  redis.call('HINCRBY', KEYS[balances], 'coin|platform:exchange', diamonds)
  redis.call('HINCRBY', KEYS[balances], 'diamond|platform:exchange', -diamonds)
  redis.call('XADD', KEYS[outbox], '*', 'tx', ARGV[9] .. stream_id .. ARGV[10], unpack(extra))
  record_spending(account, spent, rule, ARGV[15])
  return balance
end

-- the receipt, stored under the idempotency key (KEYS[1])
local function store_gift_receipt(stream_id, balance)
  local receipt = '{"stream_id":' .. stream_id .. ',"balance":' .. string.format('%d', balance)
    .. ',' .. ARGV[11] .. '}'
  if ARGV[12] == '0' then
    redis.call('SET', KEYS[1], ARGV[1] .. receipt)
  else
    redis.call('SET', KEYS[1], ARGV[1] .. receipt, 'EX', ARGV[12])
  end
  return receipt
end
