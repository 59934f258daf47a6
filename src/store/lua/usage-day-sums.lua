-- A usage batch's sums for one day, added once: a batch sent again (its first answer was lost,
-- so it may have been added already) finds its marker and adds nothing.
-- KEYS[1]: the day's sums hash, KEYS[2]: the batch's marker for that day (the same hash tag, so
-- one Cluster slot). ARGV[1]: the sums' ttl (s), ARGV[2]: the marker's ttl (s), then field,
-- amount pairs. Returns 1 when added, 0 when the batch had been.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
