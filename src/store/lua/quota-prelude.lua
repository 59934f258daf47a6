-- Shared start of every quota script. KEYS[1..3]: records, live, expired; ARGV[1]: now (the
-- caller's clock, so tests can inject time), ARGV[2]: how long expired records are kept.
-- Reaps reservations whose ttl has passed (lost processes): their slot and outstanding budget
-- amounts are freed, their minute window keeps what they reserved (those tokens may well have
-- been used), and the record stays for the grace period so a late settle still records spend.
-- Keys named in records are not in KEYS, but share the team's hash tag, so the same slot.
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[2])
local function num(v) return tonumber(v) or 0 end
-- Numbers go to redis.call as text: Lua prints -0 as '-0' and big ones as '1e+15', which
-- HINCRBY/INCRBY refuse. Whole numbers are always passed through int().
local function int(n) return string.format('%d', n) end
local function extend(k, ms)
  local left = redis.call('PTTL', k)
  if left == -1 or left < ms then redis.call('PEXPIRE', k, ms) end
end
local function unreserve(r)
  for _, k in ipairs(r.c) do
    if redis.call('DECR', k) <= 0 then redis.call('DEL', k) end
  end
  for _, b in ipairs(r.b) do
    if redis.call('EXISTS', b[1]) == 1 then
      if redis.call('HINCRBY', b[1], 'rt', int(-r.t)) < 0 then redis.call('HSET', b[1], 'rt', 0) end
      if redis.call('HINCRBY', b[1], 'ru', int(-r.u)) < 0 then redis.call('HSET', b[1], 'ru', 0) end
    end
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    unreserve(cjson.decode(raw))
    redis.call('ZADD', KEYS[3], now + grace, id)
    extend(KEYS[3], grace)
    extend(KEYS[1], grace)
  end
  redis.call('ZREM', KEYS[2], id)
end
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(forgotten) do redis.call('HDEL', KEYS[1], id) end
if #forgotten > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
