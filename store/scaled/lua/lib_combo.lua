-- Included by room_combo.lua and gift.lua (after lib_room.lua): a room's gift
-- combos (streaks). Keys are passed by name, so the gift's own script can show
-- its event within its combo in the same step as the money.
--
-- Combos hash: member -> "id|count|coins|diamonds|deadline|stream id",
--              member .. "\30" -> the final event's head.

-- known: the stream totals the caller has just written ({stream = id, gifts, coins,
-- diamonds}, as book_gift returns them), or nil: read
local function combo_overlay(stats_key, stream, coins, diamonds, known)
  local t = known
  if not (known and known.stream == stream) then
    t = redis.call('HMGET', stats_key, stream .. ':gifts', stream .. ':coins',
      stream .. ':diamonds')
  end
  return '"overlay":{"combo":{"coins":' .. fmt(coins) .. ',"diamonds":' .. fmt(diamonds)
    .. '},"stream":{"gifts":' .. fmt(tonumber(t[1] or '0')) .. ',"coins":'
    .. fmt(tonumber(t[2] or '0')) .. ',"diamonds":' .. fmt(tonumber(t[3] or '0')) .. '}}'
end

local function combo_event(stats_key, head, id, count, ended, stream, coins, diamonds, known)
  return head .. ',"combo":{"id":"' .. id .. '","count":' .. fmt(count) .. ',"end":'
    .. (ended and 'true' or 'false') .. '},'
    .. combo_overlay(stats_key, stream, coins, diamonds, known) .. '}'
end

local function combo_parse(value)
  local id, count, coins, diamonds, deadline, stream =
    string.match(value, '^([^|]*)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$')
  return id, tonumber(count), tonumber(coins), tonumber(diamonds), tonumber(deadline), stream
end

-- remove a combo and return its final event
local function combo_finish(combos_key, due_key, stats_key, member, value, known)
  local id, count, coins, diamonds, _, stream = combo_parse(value)
  local head = redis.call('HGET', combos_key, member .. '\30')
  redis.call('HDEL', combos_key, member, member .. '\30')
  redis.call('ZREM', due_key, member)
  return combo_event(stats_key, head, id, count, true, stream, coins, diamonds, known)
end

-- a gift's hit: its event within its sender's combo of that gift (after the final
-- event of that combo when its window had closed), appended to `events`.
-- window: ms ("0": not streakable, a combo of its own, ended at once); head and
-- final_head: the gift event's JSON without its closing brace, and the same with
-- count and diamonds 0; known: as combo_overlay's. Returns the ms until this
-- combo's window closes (0: ended).
local function combo_hit(combos_key, due_key, stats_key, events, member, id, count, coins,
                         diamonds, window, stream, head, final_head, now, known)
  local value = redis.call('HGET', combos_key, member)
  if value then
    local open_id, open_count, open_coins, open_diamonds, deadline = combo_parse(value)
    if deadline <= now then
      table.insert(events, combo_finish(combos_key, due_key, stats_key, member, value, known))
    else
      id, count = open_id, open_count + count
      coins, diamonds = open_coins + coins, open_diamonds + diamonds
    end
  end
  if window > 0 then
    local deadline = now + window
    redis.call('HSET', combos_key, member,
      id .. '|' .. fmt(count) .. '|' .. fmt(coins) .. '|' .. fmt(diamonds) .. '|'
        .. fmt(deadline) .. '|' .. stream,
      member .. '\30', final_head)
    redis.call('ZADD', due_key, deadline, member)
    -- a room nobody sweeps any more (every node gone) does not keep its combos forever
    redis.call('PEXPIRE', combos_key, window + 3600000)
    redis.call('PEXPIRE', due_key, window + 3600000)
    table.insert(events,
      combo_event(stats_key, head, id, count, false, stream, coins, diamonds, known))
    return window
  end
  table.insert(events, combo_event(stats_key, head, id, count, true, stream, coins, diamonds, known))
  return 0
end
