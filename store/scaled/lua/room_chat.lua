-- May a user post a comment in a room now? Bans and mutes first, then a fixed
-- window rate limit per user and room.
--
-- KEYS: 1 bans hash  2 mutes hash  3 the user's rate window counter
-- ARGV: 1 user id  2 comments per window  3 window ms
--
-- Bans and mutes hashes: user id -> "until (ms, 0: until lifted)|by|created at"
-- Replies: {"OK"}  {"E", reason}  {"L"}: over the comment limit of the window
--@include room
local now = now_ms()
local function active(key)
  local value = redis.call('HGET', KEYS[key], ARGV[1])
  if not value then
    return false
  end
  local ends = tonumber(string.match(value, '^(%d+)|'))
  if ends ~= 0 and ends <= now then
    redis.call('HDEL', KEYS[key], ARGV[1])
    return false
  end
  return true
end
if active(1) then
  return {'E', 'banned'}
end
if active(2) then
  return {'E', 'muted'}
end
local used = redis.call('INCR', KEYS[3])
if used == 1 then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
if used > tonumber(ARGV[2]) then
  return {'L'}
end
return {'OK'}
