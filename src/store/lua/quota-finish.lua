-- Runs after quota-prelude.lua (see lua-script.ts).
-- Settle (ARGV[6] = '1': replace the estimate by the actual usage ARGV[4] tokens, ARGV[5]
-- micro-USD) or release (ARGV[6] = '0': refund all) reservation ARGV[3]. The record is deleted,
-- so a repeat finds nothing and changes nothing. A minute window that has gone needs no fixing.
-- Returns 0 unknown, 1 live, 2 expired.
local raw = redis.call('HGET', KEYS[1], ARGV[3])
if not raw then return 0 end
local r = cjson.decode(raw)
local live = redis.call('ZSCORE', KEYS[2], ARGV[3])
if live then unreserve(r) end
local at, au = 0, 0
if ARGV[6] == '1' then at, au = tonumber(ARGV[4]), tonumber(ARGV[5]) end
for _, b in ipairs(r.b) do
  redis.call('HINCRBY', b[1], 'st', int(at))
  redis.call('HINCRBY', b[1], 'su', int(au))
  if b[2] > 0 then redis.call('PEXPIRE', b[1], b[2]) end
end
for _, k in ipairs(r.m) do
  if redis.call('EXISTS', k) == 1 and redis.call('INCRBY', k, int(at - r.t)) < 0 then
    redis.call('SET', k, 0, 'KEEPTTL')
  end
end
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if live then return 1 end
return 2
