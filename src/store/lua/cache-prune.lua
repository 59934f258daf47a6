-- Drops index members that have expired at ARGV now (callers' clock), with their entries.
-- KEYS[1..2]: index, info; the entries share the scope's hash tag (ARGV prefix).
local function prune(idx, info, prefix, now)
  local gone = redis.call('ZRANGEBYSCORE', idx, '-inf', now)
  for i = 1, #gone, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #gone) do
      table.insert(chunk, gone[j])
      redis.call('DEL', prefix .. 'e:' .. gone[j])
    end
    redis.call('HDEL', info, unpack(chunk))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', idx, '-inf', now) end
end
