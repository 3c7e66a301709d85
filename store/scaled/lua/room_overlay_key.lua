-- Give a room a new overlay key.
--
-- KEYS: 1 room   ARGV: 1 the new key
-- Replies: {"OK"} or {"E", reason}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'E', 'room_not_found'}
end
redis.call('HSET', KEYS[1], 'overlay_key', ARGV[1])
return {'OK'}
