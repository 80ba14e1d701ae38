-- GCRA (generic cell rate algorithm): a token bucket kept as one number per client, the
-- "theoretical arrival time" (TAT) of the next request, on Redis server time so every edge
-- instance agrees.
--
-- KEYS[1]  the client's key, e.g. ratelimit:auth:ip:10.0.0.7
-- ARGV[1]  emission interval in microseconds (period / limit)
-- ARGV[2]  burst: requests allowed at once (the limit)
-- Returns  {allowed 0|1, remaining, retry_after_us, reset_after_us}
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst

local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end

local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end

-- string.format keeps all digits; tostring would round a 16-digit number.
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, remaining, 0, new_tat - now}
