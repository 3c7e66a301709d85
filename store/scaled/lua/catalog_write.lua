-- Store catalog entries and increase the version, if the version is still ARGV[1].
-- KEYS: 1 version, 2.. one hash per kind of entry
-- ARGV: 1 the version the change was based on (0: an empty catalog), then
--       triples (index of the kind's key in KEYS, entry id, JSON document)
-- Returns the new version, or 0 when the catalog changed in between (nothing written).
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
if version ~= tonumber(ARGV[1]) then
  return 0
end
for i = 2, #ARGV, 3 do
  redis.call('HSET', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
return redis.call('INCR', KEYS[1])
