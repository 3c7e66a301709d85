-- Equip an owned item that has not expired in its kind's slot.
--
-- KEYS: 1 the user's inventory   2 the user's equipped items
-- ARGV: 1 item id   2 now (ms)
--
-- Replies: {"OK"}  {"E", "item_not_owned", item id}
local owned = redis.call('HGET', KEYS[1], ARGV[1])
if not owned then
  return {'E', 'item_not_owned', ARGV[1]}
end
local _, _, kind, ends = string.find(owned, '^([^|]*)|%d+|(%d*)$')
if ends ~= '' and tonumber(ends) <= tonumber(ARGV[2]) then
  return {'E', 'item_not_owned', ARGV[1]}
end
redis.call('HSET', KEYS[2], kind, ARGV[1])
return {'OK'}
