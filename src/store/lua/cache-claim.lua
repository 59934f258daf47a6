-- Takes the lock if free and starts an empty live record (a previous leader's leftovers must
-- never be followed). KEYS: lock, live. ARGV: token, ttl ms.
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('DEL', KEYS[2])
return 1
