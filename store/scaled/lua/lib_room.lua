-- Included by publish.lua and the room_*.lua scripts: publish room events from
-- inside a script (seq counter, capped history stream, one PUBLISH), so a change
-- of room state and the events announcing it are one atomic step and arrive in
-- the order of the changes.

local function fmt(n)
  return string.format('%d', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- payload: a JSON array of n events without seq/ts; returns the first seq and ts
-- (ts: the script's own now_ms() when it has read it already, else read here)
local function publish_payload(seq_key, hist_key, channel, maxlen, ttl, n, payload, ts)
  local last = redis.call('INCRBY', seq_key, n)
  local first_s = fmt(last - n + 1)
  ts = ts or now_ms()
  local ts_s = fmt(ts)
  -- entry id = the batch's last seq, so XRANGE by seq finds the batch holding a seq
  redis.call('XADD', hist_key, 'MAXLEN', '~', maxlen, fmt(last) .. '-0',
    's', first_s, 't', ts_s, 'd', payload)
  redis.call('EXPIRE', hist_key, ttl)
  redis.call('PUBLISH', channel, first_s .. ':' .. ts_s .. ':' .. payload)
  return last - n + 1, ts
end

-- events: JSON objects (strings) without seq/ts; returns the first seq (0: none)
local function publish_events(seq_key, hist_key, channel, maxlen, ttl, events, ts)
  if #events == 0 then
    return 0
  end
  return (publish_payload(seq_key, hist_key, channel, maxlen, ttl, #events,
    '[' .. table.concat(events, ',') .. ']', ts))
end
