-- Readiness probe: proves scripts run (and reload after a restart), not just PING.
--
-- KEYS: 1 any key (only read)
-- Reply: "ok"
redis.call('EXISTS', KEYS[1])
return 'ok'
