-- Gift combos (streaks) of a room: publish a gift's event within its combo, or end
-- the combos whose window has closed. One script, so a combo ends exactly once
-- whichever nodes race to end it, and always after its last gift's event.
--
-- KEYS: 1 combos hash   2 combo deadlines zset   3 stream totals hash
--       4 room seq counter   5 room history stream
-- ARGV: 1 channel  2 history entries to keep  3 history TTL (s)
--       4 mode: "hit", "end" (the combos that are due) or "all" (every open combo)
--   hit: 5 member (sender id, \31, gift id)  6 tx (a new combo's id)  7 count
--        8 coins  9 diamonds  10 window ms ("0": not streakable)  11 stream id
--        12 the gift event's JSON without its closing brace
--        13 the same with count and diamonds 0 (the combo's final event)
--   "late": as "hit" (5, 10 and 13 unused): the gift's event as a combo of its own,
--        ended at once, no combo touched (the settle group showing a gift whose
--        node died before its event)
-- On a Redis Cluster, "hit" and "late" also take KEYS 6, the gift's room-step
-- marker (lib_gift_marker.lua), and ARGV 14, its TTL (s): the event goes out once
-- per tx, whoever sends it how often; once out, a call publishes nothing.
--
-- Combos hash: see lib_combo.lua.
--
-- Reply: milliseconds until the next open combo's window closes ("hit": this
-- gift's combo; 0 when it ended at once), 0 when none is open; "late": 1 when
-- published, 0 when the event was out already.
--@include room
--@include combo
--@include gift_marker

local function next_wait(now)
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first == 0 then
    return 0
  end
  return math.max(tonumber(first[2]) - now, 1)
end

local now = now_ms()
local events = {}
local wait = 0

if KEYS[6] then
  local flags = marker_flags(KEYS[6])
  if has_flag(flags, SHOWN) then
    return 0
  end
  add_flag(KEYS[6], flags, SHOWN, ARGV[14])  -- published below, in this same step
end

if ARGV[4] == 'late' then
  table.insert(events, combo_event(KEYS[3], ARGV[12], ARGV[6], tonumber(ARGV[7]), true,
    ARGV[11], tonumber(ARGV[8]), tonumber(ARGV[9])))
  wait = 1
elseif ARGV[4] == 'hit' then
  wait = combo_hit(KEYS[1], KEYS[2], KEYS[3], events, ARGV[5], ARGV[6], tonumber(ARGV[7]),
    tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11], ARGV[12], ARGV[13], now)
else
  local upto = now
  if ARGV[4] == 'all' then
    upto = '+inf'
  end
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', upto, 'LIMIT', 0, 100)
  for _, member in ipairs(due) do
    local value = redis.call('HGET', KEYS[1], member)
    if value then
      table.insert(events, combo_finish(KEYS[1], KEYS[2], KEYS[3], member, value))
    else
      redis.call('ZREM', KEYS[2], member)
    end
  end
  wait = next_wait(now)
end

publish_events(KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], events)
return wait
