-- Publish a batch of room events: assign seq cluster-wide, keep them for resume,
-- fan them out once. The events themselves are opaque here (JSON array without
-- seq/ts); receivers stamp seq = first + index and ts.
--
-- KEYS: 1 room seq counter  2 room history stream
-- ARGV: 1 channel  2 number of events  3 payload  4 history entries to keep (approx.)
--       5 history TTL in seconds (an idle room's history expires; seq never does)
--
-- Reply: {first seq, ts (ms)}
--@include room
local first, ts = publish_payload(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[5],
  tonumber(ARGV[2]), ARGV[3])
return {first, ts}
