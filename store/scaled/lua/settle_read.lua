-- The settle group's next entries of one outbox (a slot's ledger outbox on a
-- Redis Cluster): the group is created from the stream's start if missing; then
-- entries read but left unacknowledged for the claim time (a sweeper died or
-- failed mid-way), else new ones.
--
-- KEYS: 1 outbox
-- ARGV: 1 group  2 consumer  3 count  4 claim idle time (ms)
--
-- Reply: the entries, {id, {field, value, ...}} each (none: nothing to do).
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')  -- BUSYGROUP: exists
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', ARGV[3])
if #claimed[2] > 0 then
  return claimed[2]
end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[1], '>')
if not read then
  return {}
end
return read[1][2]
