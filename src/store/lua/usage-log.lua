-- The request log: one XADD per record of a usage batch, all in one script call, so a batch
-- costs the gateway one command to encode and one answer to decode instead of one of each per
-- record (the answers were the records' stream ids, which nothing read). Added once: a call
-- sent again (its first answer was lost, so it may have run already) finds its marker and adds
-- nothing.
-- KEYS[1]: the stream, KEYS[2]: this call's marker (the same hash tag, so one Cluster slot).
-- ARGV[1]: the stream's approximate length cap, ARGV[2]: the marker's ttl (s), ARGV[3..]: the
-- records, as JSON. Returns how many were added.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
local cap = ARGV[1]
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*', 'r', ARGV[i])
end
return #ARGV - 2
