-- Viewer counts: each node reports its own count of a room's viewers, which
-- expires unless reported again; the room's count is the sum. When it differs
-- from the last published count, a viewers event is published, at most once per
-- interval per room across nodes.
--
-- KEYS: 1 per-node counts hash  2 last published count  3 publish lease
--       4 room  5 stream totals hash  6 room seq counter  7 room history stream
-- ARGV: 1 channel  2 history entries to keep  3 history TTL (s)  4 node id
--       5 the node's count ("-1": only read the total)  6 report TTL ms
--       7 publish interval ms
--
-- Node counts hash: node -> "count|expires at (ms)"
-- Reply: {total, ms to wait before a changed total can be published (0: none)}
--@include room
local now = now_ms()
local count = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
if count > 0 then
  redis.call('HSET', KEYS[1], ARGV[4], fmt(count) .. '|' .. fmt(now + ttl))
  redis.call('PEXPIRE', KEYS[1], ttl * 4)
elseif count == 0 then
  redis.call('HDEL', KEYS[1], ARGV[4])
end
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local n, expires = string.match(all[i + 1], '^(%d+)|(%d+)$')
  if n == nil or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    total = total + tonumber(n)
  end
end
if count < 0 then
  return {total, 0}
end
local room = redis.call('HMGET', KEYS[4], 'live', 'stream_id')
if room[1] == '1' then
  local field = room[2] .. ':peak'
  if total > tonumber(redis.call('HGET', KEYS[5], field) or '0') then
    redis.call('HSET', KEYS[5], field, total)
  end
end
local wait = 0
if redis.call('GET', KEYS[2]) ~= fmt(total) then
  if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[7]) then
    redis.call('SET', KEYS[2], fmt(total), 'EX', 86400)
    publish_events(KEYS[6], KEYS[7], ARGV[1], ARGV[2], ARGV[3],
      {'{"type":"viewers","count":' .. fmt(total) .. '}'})
  else
    wait = math.max(redis.call('PTTL', KEYS[3]), 1)
  end
end
return {total, wait}
