-- A gift on a Redis Cluster, step 2 of 3, in the creator's slot: the creator's
-- diamonds, supporters and earnings, once per transaction (a marker keyed by the
-- tx id), however many times the node and the settle group run it.
--
-- KEYS: 1 credit marker  2 creator wallet  3 all-time supporters
--       4 supporters of the gift's day (UTC)  5 supporter profiles
--       6 earnings per hour  7 earnings per stream
-- ARGV: 1 marker TTL in seconds  2 to 10 the gift (lib_gift_steps.lua: step_gift)
--
-- Reply: 1 credited now, 0 credited before.
--@durable
--@include gift_steps
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
credit_gift(2, 3, 4, 5, 6, 7, step_gift())
return 1
