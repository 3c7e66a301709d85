-- Top gifters of the current stream: coins descending, ties by user id ascending.
-- A sorted set orders equal scores by member descending when reversed, so the
-- entries tied at the cut-off score are fetched in full and the caller sorts.
--
-- KEYS: 1 room leaderboard  2 leaderboard profiles
-- ARGV: 1 limit
--
-- Reply: {user id, coins, profile JSON, ...} (unsorted, possibly more than limit)
local limit = tonumber(ARGV[1])
local top = redis.call('ZREVRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
if #top == 0 then
  return {}
end
local cutoff = top[#top]
local picked = {}
local seen = {}
for i = 1, #top, 2 do
  if tonumber(top[i + 1]) > tonumber(cutoff) then
    seen[top[i]] = true
    table.insert(picked, top[i])
    table.insert(picked, top[i + 1])
  end
end
local ties = redis.call('ZRANGEBYSCORE', KEYS[1], cutoff, cutoff, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #ties, 2 do
  if not seen[ties[i]] then
    table.insert(picked, ties[i])
    table.insert(picked, ties[i + 1])
  end
end
local reply = {}
for i = 1, #picked, 2 do
  table.insert(reply, picked[i])
  table.insert(reply, picked[i + 1])
  table.insert(reply, redis.call('HGET', KEYS[2], picked[i]) or '{}')
end
return reply
