-- End a room's current stream.
--
-- KEYS: 1 room
-- ARGV: 1 id of who ends it  2 that user is an admin ("1"/"0")  3 now (ms)
--
-- Replies: {"OK", field, value, ...} (the room hash)  {"E", reason}
local room = redis.call('HMGET', KEYS[1], 'creator_id', 'live')
if not room[1] then
  return {'E', 'room_not_found'}
end
if room[1] ~= ARGV[1] and ARGV[2] ~= '1' then
  return {'E', 'not_room_owner'}
end
if room[2] == '1' then
  redis.call('HSET', KEYS[1], 'live', '0', 'ended_at', ARGV[3])
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'OK')
return reply
