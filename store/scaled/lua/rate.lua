-- Take one token from a user's rate-limit bucket (store.domain.rules: integer
-- units of 1/3600000 token; a rate per hour refills that many units per ms).
--
-- KEYS: 1 the user's buckets (hash)
-- ARGV: 1 action  2 per hour  3 burst  4 now (ms)
--
-- Replies: {"OK"}  {"E", "too_many", action, seconds to wait}
--@include bucket
local state = redis.call('HMGET', KEYS[1], ARGV[1] .. ':t', ARGV[1] .. ':at')
local units, wait = take_token(state[1], state[2], tonumber(ARGV[4]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), 3600000)
if not units then
  return {'E', 'too_many', ARGV[1], wait}
end
redis.call('HSET', KEYS[1], ARGV[1] .. ':t', string.format('%d', units),
  ARGV[1] .. ':at', ARGV[4])
return {'OK'}
