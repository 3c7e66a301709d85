-- A room's goal: set a new one for the current stream, or mark one reached.
--
-- KEYS: 1 room  2 goal
-- ARGV: 1 mode: "set" or "claim"
--   set:   2 goal id  3 target (diamonds)  4 title  5 now (ms)
--   claim: 2 goal id
--
-- Replies: set: {"OK", stream id} or {"E", reason}
--          claim: 1 when this call marked the goal reached, else 0
if ARGV[1] == 'set' then
  local room = redis.call('HMGET', KEYS[1], 'live', 'stream_id')
  if not room[2] then
    return {'E', 'room_not_found'}
  end
  if room[1] ~= '1' then
    return {'E', 'room_not_live'}
  end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'id', ARGV[2], 'stream_id', room[2], 'target', ARGV[3],
    'title', ARGV[4], 'progress', '0', 'reached', '0', 'set_at', ARGV[5])
  return {'OK', room[2]}
end
local goal = redis.call('HMGET', KEYS[2], 'id', 'target', 'progress', 'reached')
if goal[1] ~= ARGV[2] or goal[4] ~= '0' or tonumber(goal[3]) < tonumber(goal[2]) then
  return 0
end
redis.call('HSET', KEYS[2], 'reached', '1')
return 1
