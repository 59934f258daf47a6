-- Runs after quota-prelude.lua (see lua-script.ts).
-- All-or-nothing reservation. ARGV[3]: id, ARGV[4]: plan, ARGV[5]: record. Every limit is
-- checked against the state before the request; only if none refuses is anything written.
-- Refusal ranks: budget tokens, budget USD, concurrency, tpm (a budget refusal must not be
-- retried, so it is the one reported); within a rank the first scope.
-- Returns {1} or {0, scope index, rank, limit, remaining, retry after ms or -1, budget index};
-- a grant with tokens-per-minute limits adds the tightest: {1, scope index, limit, remaining}.
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return {1} end
local plan = cjson.decode(ARGV[4])
local t, u = plan.t, plan.u
local deny = nil
local function refuse(rank, scope, limit, used, retry, budget)
  if deny == nil or rank < deny[3] then
    deny = {0, scope, rank, limit, math.max(0, limit - used), retry, budget}
  end
end
for i, s in ipairs(plan.s) do
  for j, b in ipairs(s.b) do
    local v = redis.call('HMGET', b.k, 'st', 'su', 'rt', 'ru')
    local usedT = num(v[1]) + num(v[3])
    local usedU = num(v[2]) + num(v[4])
    if b.mt and usedT + t > b.mt then refuse(1, i, b.mt, usedT, -1, j) end
    if b.mu and usedU + u > b.mu then refuse(2, i, b.mu, usedU, -1, j) end
  end
  if s.c then
    local inUse = num(redis.call('GET', s.c.k))
    if inUse + 1 > s.c.max then refuse(3, i, s.c.max, inUse, -1, 0) end
  end
  if s.m then
    local used = num(redis.call('GET', s.m.k))
    if used + t > s.m.max then refuse(4, i, s.m.max, used, plan.retry, 0) end
  end
end
if deny then return deny end
local tight = nil
for i, s in ipairs(plan.s) do
  for _, b in ipairs(s.b) do
    redis.call('HINCRBY', b.k, 'rt', int(t))
    redis.call('HINCRBY', b.k, 'ru', int(u))
    if b.ttl > 0 then redis.call('PEXPIRE', b.k, b.ttl) end
  end
  if s.c then
    redis.call('INCR', s.c.k)
    extend(s.c.k, plan.keep)
  end
  if s.m then
    local left = math.max(0, s.m.max - redis.call('INCRBY', s.m.k, int(t)))
    redis.call('PEXPIRE', s.m.k, plan.window)
    if tight == nil or left < tight[3] then tight = {i, s.m.max, left} end
  end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[2], plan.e, ARGV[3])
extend(KEYS[1], plan.keep)
extend(KEYS[2], plan.keep)
if tight then return {1, tight[1], tight[2], tight[3]} end
return {1}
