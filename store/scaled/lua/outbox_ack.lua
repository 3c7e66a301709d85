-- Acknowledge outbox entries for one consumer group, and delete the entries both
-- groups are done with (Redis < 8.2 has no XACKDEL). An entry is done for a
-- group once it was delivered to it (its id is at or below the group's
-- last-delivered-id) and is no longer pending there; a group that does not
-- exist yet is done with nothing. Without another group, acknowledged entries
-- are deleted at once.
--
-- KEYS: 1 outbox stream
-- ARGV: 1 this group, 2 the other group ("": none), 3 how many of the oldest
--       entries to look at too (0: only those acknowledged now), 4.. entry ids
-- Reply: how many entries were deleted
local outbox, group, other, scan = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
if #ids > 0 then
  redis.call('XACK', outbox, group, unpack(ids))
end
if other == '' then
  if #ids == 0 then
    return 0
  end
  return redis.call('XDEL', outbox, unpack(ids))
end
if scan > 0 then
  for _, entry in ipairs(redis.call('XRANGE', outbox, '-', '+', 'COUNT', scan)) do
    ids[#ids + 1] = entry[1]
  end
end
if #ids == 0 then
  return 0
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local last = {}
for _, info in ipairs(redis.call('XINFO', 'GROUPS', outbox)) do
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  if fields['name'] == group or fields['name'] == other then
    local ms, seq = parse(fields['last-delivered-id'])
    last[fields['name']] = {ms, seq}
  end
end
if last[group] == nil or last[other] == nil then
  return 0
end

local function done(name, id, ms, seq)
  local upto = last[name]
  if ms > upto[1] or (ms == upto[1] and seq > upto[2]) then
    return false
  end
  return #redis.call('XPENDING', outbox, name, id, id, 1) == 0
end

local seen, finished = {}, {}
for _, id in ipairs(ids) do
  if not seen[id] then
    seen[id] = true
    local ms, seq = parse(id)
    if done(group, id, ms, seq) and done(other, id, ms, seq) then
      finished[#finished + 1] = id
    end
  end
end
if #finished == 0 then
  return 0
end
return redis.call('XDEL', outbox, unpack(finished))
