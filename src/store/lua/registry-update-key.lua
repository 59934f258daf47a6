-- Compare-and-set of a key record with its hash index, in one atomic step: applies only if the
-- stored record is still the one the caller read, so concurrent admins on several instances
-- cannot undo each other's rotation or revocation.
-- KEYS: record, current hash, retired hashes (r of them), hashes to drop.
-- ARGV: expected record, next record, id, r, then r TTLs in ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
local r = tonumber(ARGV[4])
for i = 1, r do
  local ttl = tonumber(ARGV[4 + i])
  if ttl > 0 then redis.call('SET', KEYS[2 + i], ARGV[3], 'PX', ttl) else redis.call('DEL', KEYS[2 + i]) end
end
for i = 3 + r, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
