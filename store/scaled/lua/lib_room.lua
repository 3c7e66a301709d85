-- Shared by the room_*.lua scripts, which start with this file's source: publish
-- room events from inside a script, exactly as publish.lua does (seq counter,
-- capped history stream, one PUBLISH), so a change of room state and the events
-- announcing it are one atomic step and arrive in the order of the changes.

local function fmt(n)
  return string.format('%d', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- events: JSON objects (strings) without seq/ts; returns the first seq (0: none)
local function publish_events(seq_key, hist_key, channel, maxlen, ttl, events)
  local n = #events
  if n == 0 then
    return 0
  end
  local last = redis.call('INCRBY', seq_key, n)
  local first_s = fmt(last - n + 1)
  local ts_s = fmt(now_ms())
  local payload = '[' .. table.concat(events, ',') .. ']'
  redis.call('XADD', hist_key, 'MAXLEN', '~', maxlen, fmt(last) .. '-0',
    's', first_s, 't', ts_s, 'd', payload)
  redis.call('EXPIRE', hist_key, ttl)
  redis.call('PUBLISH', channel, first_s .. ':' .. ts_s .. ':' .. payload)
  return last - n + 1
end
