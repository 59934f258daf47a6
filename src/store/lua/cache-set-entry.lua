-- Runs after cache-prune.lua (see lua-script.ts).
-- Stores or replaces an entry. KEYS: entry, index, info. ARGV: body, createdAt, model,
-- expiresAt, ttl ms, hash, bytes, now, prefix.
local ttl = tonumber(ARGV[5])
prune(KEYS[2], KEYS[3], ARGV[9], tonumber(ARGV[8]))
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'b', ARGV[1], 'c', ARGV[2], 'm', ARGV[3], 'x', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
redis.call('HSET', KEYS[3], ARGV[6], ARGV[7] .. ':' .. ARGV[3])
for _, k in ipairs({KEYS[2], KEYS[3]}) do
  local left = redis.call('PTTL', k)
  if left == -1 or left < ttl then redis.call('PEXPIRE', k, ttl) end
end
return 1
