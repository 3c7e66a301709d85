-- Read the whole catalog at one version.
-- KEYS: 1 version, 2.. one hash per kind of entry
-- Returns {version, {id, document, ...} per kind}
local reply = {tonumber(redis.call('GET', KEYS[1]) or '0')}
for i = 2, #KEYS do
  reply[i] = redis.call('HGETALL', KEYS[i])
end
return reply
