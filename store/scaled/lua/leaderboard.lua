-- Top gifters of the current stream (or a creator's supporters): coins
-- descending, ties by user id ascending.
--
-- KEYS: 1 room leaderboard  2 leaderboard profiles
-- ARGV: 1 limit
--
-- Reply: {user id, coins, profile JSON, ...} in that order, at most limit
--@include leaderboard
local reply = {}
for _, row in ipairs(top_entries(KEYS[1], tonumber(ARGV[1]))) do
  table.insert(reply, row[1])
  table.insert(reply, string.format('%d', row[2]))
  table.insert(reply, redis.call('HGET', KEYS[2], row[1]) or '{}')
end
return reply
