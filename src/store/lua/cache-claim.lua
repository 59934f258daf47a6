-- Takes the lock if free and starts an empty live record with no followers (a previous leader's
-- leftovers must never be followed, nor its followers' marks keep the new one going).
-- KEYS: lock, live, followers. ARGV: token, ttl ms.
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
