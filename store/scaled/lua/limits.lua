-- Replace a user's limits. Relaxing anything (purchases or gifting back on, a
-- cap raised or removed, another time zone) or changing the PIN needs the
-- current PIN once one is set (store.domain.rules.relaxes / pin_needed).
--
-- KEYS: 1 user account
-- ARGV: 1 daily cap ("": none)  2 monthly cap ("": none)  3 purchases enabled ("1"/"0")
--       4 gifting enabled ("1"/"0")  5 time zone  6 the given PIN hashed with the
--       stored PIN's salt ("" when none given)  7 a PIN was given ("1"/"0")
--       8 change the PIN ("1"/"0")  9 the new PIN's hash ("": remove it)
--
-- Replies: {"OK"}  {"E", reason}
local old = redis.call('HMGET', KEYS[1], 'daily_cap', 'monthly_cap', 'purchases_off',
  'gifting_off', 'tz', 'pin')
local function raises(before, after)
  if not before or before == '' then
    return false
  end
  return after == '' or tonumber(after) > tonumber(before)
end
local relaxes = (ARGV[3] == '1' and old[3] == '1')
  or (ARGV[4] == '1' and old[4] == '1')
  or raises(old[1], ARGV[1])
  or raises(old[2], ARGV[2])
  or ARGV[5] ~= (old[5] or 'UTC')
local pin = old[6] or ''
if pin ~= '' and (relaxes or ARGV[8] == '1') and pin ~= ARGV[6] then
  if ARGV[7] == '1' then
    return {'E', 'wrong_pin'}
  end
  return {'E', 'pin_needed'}
end

local purchases_off, gifting_off = '1', '1'
if ARGV[3] == '1' then
  purchases_off = '0'
end
if ARGV[4] == '1' then
  gifting_off = '0'
end
redis.call('HSET', KEYS[1], 'daily_cap', ARGV[1], 'monthly_cap', ARGV[2],
  'purchases_off', purchases_off, 'gifting_off', gifting_off, 'tz', ARGV[5])
if ARGV[8] == '1' then
  redis.call('HSET', KEYS[1], 'pin', ARGV[9])
end
return {'OK'}
