-- All or nothing, checked in the order the memory store checks: concurrency, requests, tokens.
-- KEYS: the minute window, leases. ARGV: now, max concurrent, rpm, tpm ('' = no limit), tokens,
-- lease, lease ttl ms, window lifetime ms. Returns {1} or {0, the limit that refused}.
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if ARGV[2] ~= '' and redis.call('ZCARD', KEYS[2]) + 1 > tonumber(ARGV[2]) then return {0, 'max_concurrent'} end
local v = redis.call('HMGET', KEYS[1], 'r', 't')
local r, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0
if ARGV[3] ~= '' and r + 1 > tonumber(ARGV[3]) then return {0, 'requests_per_minute'} end
if ARGV[4] ~= '' and t + tonumber(ARGV[5]) > tonumber(ARGV[4]) then return {0, 'tokens_per_minute'} end
redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HINCRBY', KEYS[1], 't', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if ARGV[2] ~= '' then
  local ttl = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[2], string.format('%d', now + ttl), ARGV[6])
  local left = redis.call('PTTL', KEYS[2])
  if left == -1 or left < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return {1}
