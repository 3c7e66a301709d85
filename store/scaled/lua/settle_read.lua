-- The settle group's next entries of one outbox (a slot's ledger outbox on a
-- Redis Cluster): the group is created from the stream's start if missing; then
-- entries read but left unacknowledged for the claim time (a sweeper died or
-- failed mid-way), else new entries at least that old (their own node finishes
-- them within that time, its gift's event included, unless it died).
--
-- KEYS: 1 outbox
-- ARGV: 1 group  2 consumer  3 count  4 claim time (ms)
--       5 forget the group's other consumers idle this long (ms) that hold no
--         entries (nodes gone: each process reads as a consumer of its own);
--         "0": not now
--
-- Reply: the entries, {id, {field, value, ...}} each (none: nothing to do).
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')  -- BUSYGROUP: exists

local function fields(flat)
  local map = {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

local forget = tonumber(ARGV[5])
if forget > 0 then
  for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local consumer = fields(info)
    if consumer['name'] ~= ARGV[2] and consumer['pending'] == 0 and consumer['idle'] >= forget then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], consumer['name'])
    end
  end
end

local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', ARGV[3])
if #claimed[2] > 0 then
  return claimed[2]
end

local last = '0-0'
for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = fields(info)
  if group['name'] == ARGV[1] then
    last = group['last-delivered-id']
  end
end
local time = redis.call('TIME')
local upto = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[4])
local ready = redis.call('XRANGE', KEYS[1], '(' .. last, string.format('%d', upto),
  'COUNT', ARGV[3])
if #ready == 0 then
  return {}
end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', #ready,
  'STREAMS', KEYS[1], '>')
if not read then
  return {}
end
return read[1][2]
