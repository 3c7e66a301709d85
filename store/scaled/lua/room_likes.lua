-- Add likes to a stream's total and publish one like event per sender, each with
-- the running total (one step, so totals grow in seq order across nodes).
--
-- KEYS: 1 stream totals hash  2 room seq counter  3 room history stream
-- ARGV: 1 channel  2 history entries to keep  3 history TTL (s)  4 stream id
--       5 number of events n, then n pairs: the like event's JSON up to the value
--       of "total" (ending in "total":), the like count
--
-- Reply: the running totals, one per event
--@include room
local field = ARGV[4] .. ':likes'
local totals = {}
local events = {}
for i = 1, tonumber(ARGV[5]) do
  local total = redis.call('HINCRBY', KEYS[1], field, ARGV[5 + 2 * i])
  totals[i] = total
  events[i] = ARGV[4 + 2 * i] .. fmt(total) .. '}'
end
publish_events(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], events)
return totals
