-- Included by room_board.lua and gift.lua (after lib_room.lua and
-- lib_leaderboard.lua): a room's leaderboard and goal announcement, at most once
-- per interval across nodes. Keys are passed by name, so the gift's own script
-- can announce the totals it just wrote in the same step.

-- Unless the room's lease (`lease_key`, `interval` ms) is held: append the
-- leaderboard event (top `limit` gifters) and, when the current stream has a
-- goal, the goal event to `events`, then goal_reached when the goal's progress
-- reached its target for the first time (marked here, so it is announced once).
-- Returns 0 when announced, else the milliseconds until the lease frees up.
local function announce_board(lease_key, board_key, profiles_key, room_key, goal_key,
                              interval, limit, events)
  if not redis.call('SET', lease_key, '1', 'NX', 'PX', interval) then
    return math.max(redis.call('PTTL', lease_key), 1)
  end
  local top = {}
  for i, row in ipairs(top_entries(board_key, limit)) do
    top[i] = '{"user":' .. (redis.call('HGET', profiles_key, row[1]) or '{}') .. ',"coins":'
      .. fmt(row[2]) .. '}'
  end
  table.insert(events, '{"type":"leaderboard","top":[' .. table.concat(top, ',') .. ']}')
  local stream = redis.call('HGET', room_key, 'stream_id')
  local goal = redis.call('HMGET', goal_key, 'stream_id', 'target', 'progress', 'title',
    'reached')
  if stream and goal[1] == stream then
    local target, progress = tonumber(goal[2]), tonumber(goal[3])
    local reached = progress >= target
    local body = '"target":' .. fmt(target) .. ',"progress":' .. fmt(progress) .. ',"title":'
      .. cjson.encode(goal[4])
    table.insert(events, '{"type":"goal",' .. body .. ',"reached":'
      .. ((reached or goal[5] == '1') and 'true' or 'false') .. '}')
    if reached and goal[5] == '0' then
      redis.call('HSET', goal_key, 'reached', '1')
      table.insert(events, '{"type":"goal_reached",' .. body .. '}')
    end
  end
  return 0
end
