-- Included by the scripts that spend a user's coins (gift.lua, item.lua), after
-- --@include bucket: the spending rules of store.domain.rules, in their order
-- (debt lock, spending turned off, rate limit, time zone, daily and monthly
-- caps), read-only; and, once the script has decided to write, what they record.
--
-- check_spending returns the state to record (and the coins the wallet holds, read
-- with its debt), or nil and the reply to return:
-- {'E', reason, values...} (reasons from `off`, `daily`, `monthly`, and
-- `action` naming what is rate limited) or {'T', time zone} when the account's
-- zone is not `tz` (the caller retries with that zone's day and month).
local function cap_of(platform, user)
  local cap = nil
  if tonumber(platform) > 0 then
    cap = tonumber(platform)
  end
  if user and user ~= '' and (cap == nil or tonumber(user) < cap) then
    cap = tonumber(user)
  end
  return cap
end

local function check_spending(wallet, account, total, now, rule)
  -- wallet, account: indexes into KEYS (every key a script touches is in KEYS)
  local held = redis.call('HMGET', KEYS[wallet], 'debt', 'coin')
  local debt = tonumber(held[1] or '0')
  if debt < 0 then
    return nil, {'E', 'locked', -debt}
  end
  local acct = redis.call('HMGET', KEYS[account], 'gifting_off', 'tz', 'daily_cap', 'monthly_cap',
    'day', 'day_spent', 'month', 'month_spent', 'gift_tokens', 'gift_at')
  if acct[1] == '1' then
    return nil, {'E', rule.off}
  end
  local tokens_left = nil
  local per_minute = tonumber(rule.per_minute)
  if per_minute > 0 then
    local wait
    tokens_left, wait = take_token(acct[9], acct[10], now, per_minute, tonumber(rule.burst), 60000)
    if not tokens_left then
      return nil, {'E', 'too_many', rule.action, wait}
    end
  end
  local tz = acct[2] or 'UTC'
  if tz ~= rule.tz then
    return nil, {'T', tz}
  end
  local day_spent, month_spent = 0, 0
  if acct[5] == rule.day then
    day_spent = tonumber(acct[6])
  end
  if acct[7] == rule.month then
    month_spent = tonumber(acct[8])
  end
  local daily = cap_of(rule.daily_cap, acct[3])
  if daily and day_spent + total > daily then
    return nil, {'E', rule.daily, daily, day_spent}
  end
  local monthly = cap_of(rule.monthly_cap, acct[4])
  if monthly and month_spent + total > monthly then
    return nil, {'E', rule.monthly, monthly, month_spent}
  end
  return {day_spent = day_spent + total, month_spent = month_spent + total, tokens = tokens_left,
    coins = tonumber(held[2] or '0')}
end

local function record_spending(account, spent, rule, now)
  if spent.tokens then
    redis.call('HSET', KEYS[account], 'day', rule.day,
      'day_spent', string.format('%d', spent.day_spent), 'month', rule.month,
      'month_spent', string.format('%d', spent.month_spent),
      'gift_tokens', string.format('%d', spent.tokens), 'gift_at', now)
  else
    redis.call('HSET', KEYS[account], 'day', rule.day,
      'day_spent', string.format('%d', spent.day_spent), 'month', rule.month,
      'month_spent', string.format('%d', spent.month_spent))
  end
end
