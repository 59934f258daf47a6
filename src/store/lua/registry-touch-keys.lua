-- Last-used times only move forward: several instances flush their batches independently, and
-- an older batch landing after a newer one must not turn a key's last use back.
-- KEYS: the last-used hash. ARGV: id, time, id, time, ...
for i = 1, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
