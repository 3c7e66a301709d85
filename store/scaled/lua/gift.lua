-- Send a gift on a single Redis: every check before the first write (Redis has no
-- rollback). On a cluster the same gift is three scripts, one per slot:
-- gift_debit.lua, gift_credit.lua, room_gift.lua (lib_gift*.lua are shared).
--
-- KEYS: 1 idempotency key (sender)   2 sender wallet      3 room
--       4 creator wallet             5 room leaderboard   6 leaderboard profiles
--       7 system balances            8 ledger outbox
-- ARGV: 1 fingerprint (32 chars)     2 sender id          3 sender adult ("1"/"0")
--       4 creator id the caller expects (from its room cache; "" when unknown)
--       5 total coins                6 creator diamonds   7 platform coins
--       8 sender public profile (JSON)
--       9, 10 outbox entry JSON around the stream id (head .. stream_id .. tail)
--       11 receipt JSON members other than stream_id and balance
--       12 idempotency key TTL in seconds ("0": keep forever)
--       13 gift count                14 daily supporters TTL in seconds
-- KEYS (room activity, written with the gift so they always equal the ledger):
--       9 room stream totals         10 room goal         11 creator's all-time supporters
--       12 creator's supporters of the gift's day (UTC)   13 supporter profiles
-- KEYS (money rules): 14 sender account   15 creator earnings per hour
--       16 creator earnings per stream
-- ARGV (money rules): 15 now (ms)   16 the sender's time zone the caller assumed
--       17, 18 the local day (YYYY-MM-DD) and month (YYYY-MM) of now in that zone
--       19, 20 platform daily and monthly spending caps ("0": none)
--       21 gifts per minute per user ("0": not rate limited)   22 gift burst
--       23 the hour of now (ms // 3600000)   24 room id
--       25 "1": the caller refuses the sale (not offered, or another price shown)
-- Optionally the gift's event, shown in the same step (lib_combo.lua): then
-- KEYS: 17 room combos hash   18 room combo deadlines   19 room seq counter
--       20 room history stream   21 the rooms with open combos (the sweep's list)
-- ARGV: 26 channel   27 history entries to keep   28 history TTL (s)
--       29 the gift's tx id (a new combo's id)   30 combo member (sender id, \31, gift id)
--       31 combo window ms ("0": not streakable)
--       32 the gift event's JSON without its closing brace
--       33 the same with count and diamonds 0 (the combo's final event)
-- and optionally, the room's leaderboard and goal announced after it when the
-- room's announcement lease is free (lib_board.lua), in the same batch:
-- KEYS: 22 the room's board lease
-- ARGV: 34 the announcements' interval ms   35 leaderboard entries
-- The reply of a committed gift is then {"OK", receipt, ms until its combo's
-- window closes (0: ended at once)[, 0 when the board was announced, else ms
-- until the lease frees up]}; a replay publishes nothing.
--
-- Replies: {"OK", receipt}  {"R", stored receipt}  {"E", reason, value...}
--          {"S", creator id}: the caller's cached creator is stale (wrong wallet in
--          KEYS); nothing was written and the caller retries with the right key.
--          {"T", time zone}: the sender's time zone is not the one assumed; nothing
--          was written and the caller retries with that zone's day and month.
--          {"N"}: not a resend, and ARGV[25] refused the sale: nothing was written.
--@durable
--@include idempotency
if ARGV[25] == '1' then
  return {'N'}
end
--@include bucket
--@include spending
--@include gift
--@include gift_steps
--@include room
--@include combo
--@include leaderboard
--@include board

local room = redis.call('HMGET', KEYS[3], 'creator_id', 'live', 'creator_adult', 'stream_id')
local spent, rule = check_gift(room, 2, 14)
if not spent then
  return rule
end

-- writes: nothing below can fail on valid keys
local stream_id = room[4]
local balance = debit_gift(2, 7, 8, 14, spent, rule, stream_id, {})
local gift = {sender = ARGV[2], profile = ARGV[8], total = tonumber(ARGV[5]),
  diamonds = tonumber(ARGV[6]), count = ARGV[13], stream = stream_id, room = ARGV[24],
  hour = ARGV[23], day_ttl = ARGV[14]}
credit_gift(4, 11, 12, 13, 15, 16, gift)
local totals = book_gift(5, 6, 9, 10, gift, true)
local receipt = store_gift_receipt(stream_id, balance)
if not KEYS[17] then
  return {'OK', receipt}
end
-- the gift's event within its combo, after the totals it shows
local now = now_ms()
local events = {}
local wait = combo_hit(KEYS[17], KEYS[18], KEYS[9], events, ARGV[30], ARGV[29],
  tonumber(ARGV[13]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[31]), stream_id,
  ARGV[32], ARGV[33], now, totals)
if wait > 0 then
  -- listed for every node's sweep (a stale score is corrected by whoever ends it)
  redis.call('ZADD', KEYS[21], 'NX', now + wait, ARGV[24])
end
if not KEYS[22] then
  publish_events(KEYS[19], KEYS[20], ARGV[26], ARGV[27], ARGV[28], events, now)
  return {'OK', receipt, wait}
end
local board = announce_board(KEYS[22], KEYS[5], KEYS[6], KEYS[3], KEYS[10], ARGV[34],
  tonumber(ARGV[35]), events)
publish_events(KEYS[19], KEYS[20], ARGV[26], ARGV[27], ARGV[28], events, now)
return {'OK', receipt, wait, board}
