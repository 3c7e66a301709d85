-- Included by the scripts that take an idempotency key: KEYS[1] holds the
-- fingerprint of the first request (ARGV[1], 32 chars) followed by its answer.
-- The same request again gets that answer, {"R", answer}; another request under
-- the same key is refused.
local stored = redis.call('GET', KEYS[1])
if stored then
  if string.sub(stored, 1, 32) == ARGV[1] then
    return {'R', string.sub(stored, 33)}
  end
  return {'E', 'key_reused'}
end
