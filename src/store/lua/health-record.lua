-- Runs after health-circuit-prelude.lua (see lua-script.ts).
-- ARGV[3]: 's' or 'f', ARGV[4]: probe token or '', ARGV[5]: failures, ARGV[6]: failure ratio,
-- ARGV[7]: min requests, ARGV[8]: bucket ms, ARGV[9]: buckets per window, ARGV[10]: key
-- lifetime ms. A probe's outcome closes or re-opens a half-open circuit; other outcomes count
-- only while it is closed. Returns the state after.
if ARGV[4] ~= '' then
  if st ~= 'h' or redis.call('HGET', KEYS[1], 'p') ~= ARGV[4] then return state() end
  if ARGV[3] == 's' then
    redis.call('DEL', KEYS[1])
    return 'closed'
  end
  return open(ARGV[10])
end
if st ~= 'c' then return state() end
local bms = tonumber(ARGV[8])
local bucket = math.floor(now / bms)
local fields = redis.call('HGETALL', KEYS[1])
local sizeChanged = tonumber(redis.call('HGET', KEYS[1], 'bm') or '0') ~= bms
local requests, failures = 0, 0
for i = 1, #fields, 2 do
  local kind, index = string.match(fields[i], '^([sf]):(%d+)$')
  if kind then
    if sizeChanged or tonumber(index) <= bucket - tonumber(ARGV[9]) then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      requests = requests + tonumber(fields[i + 1])
      if kind == 'f' then failures = failures + tonumber(fields[i + 1]) end
    end
  end
end
local cf = 0
if ARGV[3] == 's' then
  redis.call('HSET', KEYS[1], 'cf', 0)
  redis.call('HINCRBY', KEYS[1], 's:' .. int(bucket), 1)
else
  cf = redis.call('HINCRBY', KEYS[1], 'cf', 1)
  redis.call('HINCRBY', KEYS[1], 'f:' .. int(bucket), 1)
  failures = failures + 1
end
requests = requests + 1
redis.call('HSET', KEYS[1], 'st', 'c', 'bm', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[10])
if ARGV[3] == 'f' and (cf >= tonumber(ARGV[5]) or
    (requests >= tonumber(ARGV[7]) and failures / requests >= tonumber(ARGV[6]))) then
  return open(ARGV[10])
end
return 'closed'
