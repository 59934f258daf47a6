-- Runs after cache-followers.lua (see lua-script.ts).
-- Marks (or renews) one follower until ttl ms from now; drops lapsed marks on the way. The set
-- lives as long as its longest mark. KEYS: followers. ARGV: follower, ttl ms.
local now = now_ms()
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
