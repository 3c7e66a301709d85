-- Create a room or start its next stream.
--
-- KEYS: 1 room  2 room leaderboard  3 leaderboard profiles
-- ARGV: 1 creator id  2 creator public profile (JSON)  3 creator adult ("1"/"0")
--       4 title  5 now (ms)  6 overlay key for a new room
--
-- Replies: {"OK", field, value, ...} (the room hash)  {"E", reason}
local owner = redis.call('HGET', KEYS[1], 'creator_id')
if not owner then
  redis.call('HSET', KEYS[1],
    'creator_id', ARGV[1], 'creator', ARGV[2], 'creator_adult', ARGV[3], 'title', ARGV[4],
    'live', '1', 'stream_id', '1', 'started_at', ARGV[5], 'ended_at', '',
    'overlay_key', ARGV[6])
  redis.call('DEL', KEYS[2], KEYS[3])
elseif owner ~= ARGV[1] then
  return {'E', 'room_taken'}
elseif redis.call('HGET', KEYS[1], 'live') == '1' then
  redis.call('HSET', KEYS[1], 'title', ARGV[4])
else
  redis.call('HINCRBY', KEYS[1], 'stream_id', 1)
  redis.call('HSET', KEYS[1],
    'creator', ARGV[2], 'creator_adult', ARGV[3], 'title', ARGV[4],
    'live', '1', 'started_at', ARGV[5], 'ended_at', '')
  -- the leaderboard is per stream: the new stream starts empty
  redis.call('DEL', KEYS[2], KEYS[3])
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'OK')
return reply
