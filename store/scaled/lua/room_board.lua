-- A room's leaderboard and goal announcement, at most once per interval across
-- nodes, in one step on the room's slot: take the room's lease, read its top
-- gifters and its goal, publish a leaderboard event and a goal event, and when
-- the goal's progress reached its target for the first time, mark it reached and
-- publish goal_reached after them (so exactly one node announces it, once).
--
-- KEYS: 1 lease  2 room leaderboard  3 leaderboard profiles  4 room  5 goal
--       6 room seq counter  7 room history stream
-- ARGV: 1 channel  2 history entries to keep  3 history TTL (s)  4 interval ms
--       5 leaderboard entries
--
-- Reply: 0 when announced, else milliseconds until the lease frees up
--@include room
--@include leaderboard
--@include board
local events = {}
local wait = announce_board(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[4],
  tonumber(ARGV[5]), events)
if wait > 0 then
  return wait
end
publish_events(KEYS[6], KEYS[7], ARGV[1], ARGV[2], ARGV[3], events)
return 0
