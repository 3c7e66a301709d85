-- Take one token from a user's rate-limit bucket (store.policy: integer units of
-- 1/3600000 token; a rate per hour refills that many units per ms).
--
-- KEYS: 1 the user's buckets (hash)
-- ARGV: 1 action  2 per hour  3 burst  4 now (ms)
--
-- Replies: {"OK"}  {"E", "rate_limited", message}
local per_hour = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3]) * 3600000
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], ARGV[1] .. ':t', ARGV[1] .. ':at')
local units = capacity
if state[1] and state[2] then
  local elapsed = math.min(math.max(now - tonumber(state[2]), 0), capacity)
  units = math.min(capacity, tonumber(state[1]) + elapsed * per_hour)
end
if units < 3600000 then
  local wait = math.floor((3600000 - units + per_hour - 1) / per_hour)
  return {'E', 'rate_limited', 'too many ' .. ARGV[1] .. ': try again in '
          .. string.format('%d', math.floor((wait + 999) / 1000)) .. ' s'}
end
redis.call('HSET', KEYS[1], ARGV[1] .. ':t', string.format('%d', units - 3600000),
  ARGV[1] .. ':at', ARGV[4])
return {'OK'}
