-- What a creator holds for a reversal's clawback on a cluster (read only): the
-- wallet's diamonds plus those of the clawed gifts whose credit has not landed
-- yet (no credit marker). Such a credit lands later and only adds, as the
-- clawback only subtracts, so the two commute.
--
-- KEYS: 1 the creator's wallet   2.. the credit markers of the creator's recent
--       gifts that the reversal may claw back
-- ARGV: the diamonds of each of those gifts, in the order of KEYS 2..
--
-- Reply: the diamonds held
local held = tonumber(redis.call('HGET', KEYS[1], 'diamond') or '0')
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    held = held + tonumber(ARGV[i - 1])
  end
end
return held
