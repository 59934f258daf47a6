-- The request log: one XADD per record of a usage batch, all in one script call, so a batch
-- costs the gateway one command to encode and one answer to decode instead of one of each per
-- record (the answers were the records' stream ids, which nothing read).
-- KEYS[1]: the stream. ARGV[1]: its approximate length cap. ARGV[2..]: the records, as JSON.
local cap = ARGV[1]
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*', 'r', ARGV[i])
end
return #ARGV - 1
