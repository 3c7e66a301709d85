-- A room's leaderboard and goal announcement, at most once per interval across
-- nodes, in one step on the room's slot: take the room's lease, read its top
-- gifters and its goal, publish a leaderboard event and a goal event, and when
-- the goal's progress reached its target for the first time, mark it reached and
-- publish goal_reached after them (so exactly one node announces it, once).
--
-- KEYS: 1 lease  2 room leaderboard  3 leaderboard profiles  4 room  5 goal
--       6 room seq counter  7 room history stream
-- ARGV: 1 channel  2 history entries to keep  3 history TTL (s)  4 interval ms
--       5 leaderboard entries
--
-- Reply: 0 when announced, else milliseconds until the lease frees up
--@include room
--@include leaderboard
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[4]) then
  return math.max(redis.call('PTTL', KEYS[1]), 1)
end
local top = {}
for i, row in ipairs(top_entries(KEYS[2], tonumber(ARGV[5]))) do
  top[i] = '{"user":' .. (redis.call('HGET', KEYS[3], row[1]) or '{}') .. ',"coins":'
    .. fmt(row[2]) .. '}'
end
local events = {'{"type":"leaderboard","top":[' .. table.concat(top, ',') .. ']}'}
local stream = redis.call('HGET', KEYS[4], 'stream_id')
local goal = redis.call('HMGET', KEYS[5], 'stream_id', 'target', 'progress', 'title', 'reached')
if stream and goal[1] == stream then
  local target, progress = tonumber(goal[2]), tonumber(goal[3])
  local reached = progress >= target
  local body = '"target":' .. fmt(target) .. ',"progress":' .. fmt(progress) .. ',"title":'
    .. cjson.encode(goal[4])
  table.insert(events, '{"type":"goal",' .. body .. ',"reached":'
    .. ((reached or goal[5] == '1') and 'true' or 'false') .. '}')
  if reached and goal[5] == '0' then
    redis.call('HSET', KEYS[5], 'reached', '1')
    table.insert(events, '{"type":"goal_reached",' .. body .. '}')
  end
end
publish_events(KEYS[6], KEYS[7], ARGV[1], ARGV[2], ARGV[3], events)
return 0
