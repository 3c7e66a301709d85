-- Included by room_gift.lua and room_combo.lua: a gift's marker in its room's slot
-- on a Redis Cluster (keyed by its tx id), a number holding two flags, each set
-- once: BOOKED (1: its stream totals, goal and leaderboard, room_gift.lua) and
-- SHOWN (2: its gift event went out, room_combo.lua). A marker written before the
-- SHOWN flag existed holds "1".
local BOOKED, SHOWN = 1, 2

local function marker_flags(key)
  return tonumber(redis.call('GET', key) or '0') or 0
end

local function has_flag(flags, flag)
  return math.floor(flags / flag) % 2 == 1
end

-- set `flag` on a marker holding `flags` (kept `ttl` seconds from now)
local function add_flag(key, flags, flag, ttl)
  redis.call('SET', key, string.format('%d', flags + flag), 'EX', ttl)
end
