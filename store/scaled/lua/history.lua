-- Read a room's recent events for a resume, consistently with its last seq.
--
-- KEYS: 1 room seq counter  2 room history stream
-- ARGV: 1 since (events with seq > since are wanted)
--
-- Reply: {last seq, now (ms), entries} where entries is the XRANGE reply from the
-- batch holding seq since+1 on (omitted when since >= last seq).
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local since = tonumber(ARGV[1])
if since >= last then
  return {last, now_ms}
end
if since < 0 then
  since = -1
end
return {last, now_ms, redis.call('XRANGE', KEYS[2], string.format('%d', since + 1), '+')}
