-- Included by the rate-limited scripts: a token bucket in integer units
-- (store.domain.rules): it holds up to `burst` tokens of `token` units and
-- refills `rate` units per ms. Taking a token returns the units left, or nil and
-- the whole seconds to wait (rounded up) when the bucket is empty.
local function take_token(tokens, at, now, rate, burst, token)
  local capacity = burst * token
  local units = capacity
  if tokens and at then
    local elapsed = math.min(math.max(now - tonumber(at), 0), capacity)
    units = math.min(capacity, tonumber(tokens) + elapsed * rate)
  end
  if units < token then
    local wait = math.floor((token - units + rate - 1) / rate)
    return nil, math.floor((wait + 999) / 1000)
  end
  return units - token, 0
end
