-- Publish a batch of room events: assign seq cluster-wide, keep them for resume,
-- fan them out once. The events themselves are opaque here (JSON array without
-- seq/ts); receivers stamp seq = first + index and ts.
--
-- KEYS: 1 room seq counter  2 room history stream
-- ARGV: 1 channel  2 number of events  3 payload  4 history entries to keep (approx.)
--       5 history TTL in seconds (an idle room's history expires; seq never does)
--
-- Reply: {first seq, ts (ms)}
local n = tonumber(ARGV[2])
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local first_s = string.format('%d', first)
local ts_s = string.format('%d', ts)
-- entry id = the batch's last seq, so XRANGE by seq finds the batch holding a seq
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], string.format('%d', last) .. '-0',
  's', first_s, 't', ts_s, 'd', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[1], first_s .. ':' .. ts_s .. ':' .. ARGV[3])
return {first, ts}
