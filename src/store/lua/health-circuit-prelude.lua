-- Shared start of the circuit scripts. KEYS[1]: the deployment's circuit hash. ARGV[1]: now
-- (the callers' clock), ARGV[2]: cool-down ms.
local now = tonumber(ARGV[1])
local st = redis.call('HGET', KEYS[1], 'st') or 'c'
local function int(n) return string.format('%d', n) end
local function state()
  if st == 'o' then
    if now >= tonumber(redis.call('HGET', KEYS[1], 'u')) then return 'half-open' end
    return 'open'
  end
  if st == 'h' then return 'half-open' end
  return 'closed'
end
local function open(keep)
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'st', 'o', 'u', int(now + tonumber(ARGV[2])))
  redis.call('PEXPIRE', KEYS[1], keep)
  return 'open'
end
