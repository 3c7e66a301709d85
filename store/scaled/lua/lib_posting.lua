-- Included by the scripts that complete an outbox entry's postings: one posting
-- as JSON. account: a JSON string (quoted); asset: "coin" or "diamond".
local function posting(account, asset, amount)
  return '{"account":' .. account .. ',"asset":"' .. asset .. '","amount":'
    .. string.format('%d', amount) .. '}'
end
