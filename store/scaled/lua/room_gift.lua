-- A gift on a Redis Cluster, step 3 of 3, in the room's slot: the stream's
-- totals and goal, and its leaderboard while the room still shows the gift's
-- stream, once per transaction (the BOOKED flag of a marker keyed by the tx id).
--
-- KEYS: 1 room-step marker  2 room  3 leaderboard  4 leaderboard profiles
--       5 stream totals  6 goal
-- ARGV: 1 marker TTL in seconds  2 to 10 the gift (lib_gift_steps.lua: step_gift)
--
-- Reply: {1 booked now / 0 booked before, 1 its event is out (SHOWN) / 0 not yet}.
--@include gift_steps
--@include gift_marker
local flags = marker_flags(KEYS[1])
local shown = has_flag(flags, SHOWN) and 1 or 0
if has_flag(flags, BOOKED) then
  return {0, shown}
end
add_flag(KEYS[1], flags, BOOKED, ARGV[1])
local gift = step_gift()
book_gift(3, 4, 5, 6, gift, redis.call('HGET', KEYS[2], 'stream_id') == gift.stream)
return {1, shown}
