-- Included by leaderboard.lua and room_board.lua: the top entries of a sorted set
-- (member -> coins), coins descending, ties by member ascending. A sorted set
-- orders equal scores by member descending when reversed, so the entries tied
-- at the cut-off score are fetched in full, then everything is sorted here.

-- returns {{member, coins}, ...}, at most limit, in leaderboard order
local function top_entries(zset, limit)
  local top = redis.call('ZREVRANGE', zset, 0, limit - 1, 'WITHSCORES')
  if #top == 0 then
    return {}
  end
  local cutoff = tonumber(top[#top])
  local rows = {}
  local seen = {}
  for i = 1, #top, 2 do
    local coins = tonumber(top[i + 1])
    if coins > cutoff then
      seen[top[i]] = true
      table.insert(rows, {top[i], coins})
    end
  end
  -- fewer than `limit` members: every one is in `top` already, ties included
  local ties = top
  if #top >= 2 * limit then
    ties = redis.call('ZRANGEBYSCORE', zset, top[#top], top[#top], 'WITHSCORES',
      'LIMIT', 0, limit)
  end
  for i = 1, #ties, 2 do
    if not seen[ties[i]] then
      table.insert(rows, {ties[i], tonumber(ties[i + 1])})
    end
  end
  table.sort(rows, function(a, b)
    if a[2] ~= b[2] then
      return a[2] > b[2]
    end
    return a[1] < b[1]
  end)
  while #rows > limit do
    table.remove(rows)
  end
  return rows
end
