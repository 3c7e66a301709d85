-- A lease per room and name, across nodes, for events published at most once per
-- interval (leaderboard and goal progress).
--
-- KEYS: 1 lease   ARGV: 1 interval ms
-- Reply: 0 when the caller got the lease, else milliseconds until it frees up
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
return math.max(redis.call('PTTL', KEYS[1]), 1)
