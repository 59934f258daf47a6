-- Runs after health-circuit-prelude.lua (see lua-script.ts).
-- ARGV[3]: a fresh probe token, ARGV[4]: key lifetime ms. Returns {1} (closed: go), {1, token}
-- (this caller holds the one probe), or {0, ms until the cool-down or the probe's claim ends}.
if st == 'c' then return {1} end
local untilMs = tonumber(redis.call('HGET', KEYS[1], 'u'))
if now < untilMs then return {0, int(untilMs - now)} end
redis.call('HSET', KEYS[1], 'st', 'h', 'p', ARGV[3], 'u', int(now + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, ARGV[3]}
