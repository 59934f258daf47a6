-- One day's usage sums, added in one call (see redis-usage-store.ts). KEYS[1]: the day's hash,
-- ARGV[1]: its expiry in seconds, then field and amount pairs. The same as a MULTI of HINCRBYs
-- and an EXPIRE, with one reply to decode instead of one per command.
local key = KEYS[1]
for i = 2, #ARGV, 2 do redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', key, ARGV[1])
return 0
