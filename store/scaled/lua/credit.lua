-- A creator's side of a money transaction on a cluster, at most once per
-- transaction: the diamonds of an item's creator share (with the creator's
-- earnings), or a reversal's clawback (a negative amount). The transaction is
-- already committed on the buyer's slot, with its whole entry in that slot's
-- outbox; this step never refuses.
--
-- KEYS: 1 the marker (creator's slot, keyed by the tx id)   2 the creator's wallet
--       3, 4 (only with earnings) the creator's earnings per hour and per stream
-- ARGV: 1 diamonds (negative: clawed back)   2 the marker's TTL in seconds
--       3, 4 (only with earnings) the hour, the "<stream>|<room>" field
--
-- Replies: {"OK"} applied now, {"R"} applied before
--@durable
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return {'R'}
end
redis.call('HINCRBY', KEYS[2], 'diamond', ARGV[1])
if KEYS[3] then
  redis.call('HINCRBY', KEYS[3], ARGV[3], ARGV[1])
  redis.call('HINCRBY', KEYS[4], ARGV[4], ARGV[1])
end
return {'OK'}
