-- A gift on a Redis Cluster, step 1 of 3, in the sender's slot: every check, the
-- debit, the platform's revenue and exchange on this slot's system balances, the
-- whole transaction (the creator's credit included) to this slot's outbox, and
-- the receipt. Once it returns OK the gift is committed; gift_credit.lua (the
-- creator's slot) and room_gift.lua (the room's slot) finish it, run by the
-- node at once and by the settle group of the outbox for any node that died.
--
-- KEYS: 1 idempotency key (sender)  2 sender wallet  3 sender account
--       4 system balances of this slot  5 ledger outbox of this slot
-- ARGV: 1 to 25 as gift.lua's (ARGV[4]: the room's creator the caller just read,
--       "" when the room does not exist)
--       26 the room is live ("1"/"0")  27 its creator is an adult ("1"/"0")
--       28 its current stream id  29 what the two other steps need (JSON), kept
--       in the outbox entry's "gift" field for the settle group
--
-- Replies: as gift.lua's ({"S", ...} never: the caller passes the room's facts).
--@durable
--@include idempotency
if ARGV[25] == '1' then
  return {'N'}
end
--@include bucket
--@include spending
--@include gift

local creator = ARGV[4]
if creator == '' then
  creator = nil
end
local room = {creator, ARGV[26], ARGV[27], ARGV[28]}
local spent, rule = check_gift(room, 2, 3)
if not spent then
  return rule
end
local balance = debit_gift(2, 4, 5, 3, spent, rule, ARGV[28], {'gift', ARGV[29]})
return {'OK', store_gift_receipt(ARGV[28], balance)}
