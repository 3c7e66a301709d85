-- Included by gift.lua, gift_credit.lua and room_gift.lua: what a gift changes in
-- the creator's slot and in the room's slot. `gift` is a table: sender (id),
-- profile (public JSON), total (coins), diamonds, count, stream (id), room (id),
-- hour (ms // 3600000), day_ttl (seconds a day's supporters are kept).

-- the creator's slot: diamonds, supporters, earnings (indexes into KEYS)
local function credit_gift(wallet, all_time, of_day, profiles, hours, streams, gift)
  redis.call('HINCRBY', KEYS[wallet], 'diamond', gift.diamonds)
  redis.call('ZINCRBY', KEYS[all_time], gift.total, gift.sender)
  redis.call('ZINCRBY', KEYS[of_day], gift.total, gift.sender)
  redis.call('EXPIRE', KEYS[of_day], gift.day_ttl)
  redis.call('HSET', KEYS[profiles], gift.sender, gift.profile)
  if gift.diamonds > 0 then
    redis.call('HINCRBY', KEYS[hours], gift.hour, gift.diamonds)
    redis.call('HINCRBY', KEYS[streams], gift.stream .. '|' .. gift.room, gift.diamonds)
  end
end

-- the room's slot: the stream's leaderboard (when `leaderboard`), totals and goal.
-- Returns the stream's totals after the gift: {stream = id, gifts, coins, diamonds}
local function book_gift(board, board_profiles, stats, goal, gift, leaderboard)
  if leaderboard then
    redis.call('ZINCRBY', KEYS[board], gift.total, gift.sender)
    redis.call('HSET', KEYS[board_profiles], gift.sender, gift.profile)
  end
  local gifts = redis.call('HINCRBY', KEYS[stats], gift.stream .. ':gifts', gift.count)
  local coins = redis.call('HINCRBY', KEYS[stats], gift.stream .. ':coins', gift.total)
  local diamonds = redis.call('HINCRBY', KEYS[stats], gift.stream .. ':diamonds', gift.diamonds)
  if redis.call('HGET', KEYS[goal], 'stream_id') == gift.stream then
    redis.call('HINCRBY', KEYS[goal], 'progress', gift.diamonds)
  end
  return {stream = gift.stream, gifts, coins, diamonds}
end

-- a split step's gift from ARGV[2..10] (gift_credit.lua, room_gift.lua)
local function step_gift()
  return {sender = ARGV[2], profile = ARGV[3], total = tonumber(ARGV[4]),
    diamonds = tonumber(ARGV[5]), count = ARGV[6], stream = ARGV[7], room = ARGV[8],
    hour = ARGV[9], day_ttl = ARGV[10]}
end
