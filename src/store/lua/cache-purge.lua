-- Removes a scope's entries (ARGV[4] = '1': only those of model ARGV[2]). KEYS: index, info.
-- ARGV: prefix, model, now, by model. Returns {live entries removed, entries left}.
local now = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[2])
local n = 0
for i = 1, #all, 2 do
  local h, v = all[i], all[i + 1]
  local model = string.sub(v, string.find(v, ':', 1, true) + 1)
  if ARGV[4] == '0' or model == ARGV[2] then
    local score = redis.call('ZSCORE', KEYS[1], h)
    if score and tonumber(score) > now then n = n + 1 end
    redis.call('DEL', ARGV[1] .. 'e:' .. h)
    redis.call('HDEL', KEYS[2], h)
    redis.call('ZREM', KEYS[1], h)
  end
end
return {n, redis.call('ZCARD', KEYS[1])}
