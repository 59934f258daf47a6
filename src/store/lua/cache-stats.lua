-- Runs after cache-prune.lua (see lua-script.ts).
-- Live entries and their bytes after pruning. KEYS: index, info. ARGV: prefix, now.
prune(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
local bytes = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  bytes = bytes + tonumber(string.sub(v, 1, string.find(v, ':', 1, true) - 1))
end
return {redis.call('ZCARD', KEYS[1]), bytes}
