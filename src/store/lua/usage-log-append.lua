-- Records appended to the request log in one call (see redis-usage-store.ts). KEYS[1]: the log
-- stream, ARGV[1]: its approximate cap, then one JSON record per entry. One reply instead of an
-- entry id per record.
local key, cap = KEYS[1], ARGV[1]
for i = 2, #ARGV do redis.call('XADD', key, 'MAXLEN', '~', cap, '*', 'r', ARGV[i]) end
return #ARGV - 1
