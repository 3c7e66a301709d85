-- Acknowledge outbox entries for one consumer group and delete those that every
-- other group named has acknowledged too (Redis < 8.2 has no XACKDEL).
-- An entry is done for a group once it was delivered to it (its id is at or
-- below the group's last-delivered-id) and is no longer pending there. A group
-- that does not exist yet has done nothing: its entries stay.
--
-- KEYS: 1 outbox stream
-- ARGV: 1 this group, 2 the other group ("": none, delete at once), 3.. entry ids
-- Reply: how many entries were deleted
local outbox, group, other = KEYS[1], ARGV[1], ARGV[2]
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
  return 0
end
redis.call('XACK', outbox, group, unpack(ids))
if other == '' then
  return redis.call('XDEL', outbox, unpack(ids))
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local last = nil
for _, info in ipairs(redis.call('XINFO', 'GROUPS', outbox)) do
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  if fields['name'] == other then
    last = fields['last-delivered-id']
  end
end
if last == nil then
  return 0
end
local last_ms, last_seq = parse(last)
local done = {}
for _, id in ipairs(ids) do
  local ms, seq = parse(id)
  local delivered = ms < last_ms or (ms == last_ms and seq <= last_seq)
  if delivered and #redis.call('XPENDING', outbox, other, id, id, 1) == 0 then
    done[#done + 1] = id
  end
end
if #done == 0 then
  return 0
end
return redis.call('XDEL', outbox, unpack(done))
